"""Dashboard logins: progressive delay, temporary lockout and the record of every attempt.

Failed attempts count against the e-mail typed (known or not, so the answers never tell which
addresses exist) and against the IP, within a sliding window (15 minutes by default):

- after n failures the next attempt must wait ``delay_s(n)``: 1, 2, 4, 8 s (then 8 s), by
  default (``login_first_delay_ms`` scales them);
- at ``login_max_failures`` failures of an e-mail (5) or ``login_max_failures_per_ip`` of an
  IP (10) the e-mail or IP is locked out until the oldest of those failures leaves the window,
  and the right password is refused too.

A success of the e-mail clears its own count (not the IP's: an attacker's own account must
not reset the counter of the address it guesses from). Attempts refused by the delay or the
lockout are recorded but not counted, so waiting out a lockout always works.

Each attempt is written (``pending``) before its password is checked and counts as a failure
until it ends: parallel guesses from other sessions see it and wait their turn.

``verdict`` is the rule as a plain function; ``start_attempt`` and ``finish_attempt`` apply
it to the ``login_attempts`` table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from accounts.models import LoginAttempt, utcnow
from trackhouse.settings import Settings, get_settings

COUNTED = ("failed", "pending")  # outcomes that count as failures
FIRST_DELAY_S = 1.0
MAX_DELAY_FACTOR = 8  # the delay doubles three times, then stays
EMAIL_CHARS = 320
USER_AGENT_CHARS = 500


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    max_failures_per_ip: int = 10
    window: timedelta = timedelta(minutes=15)
    first_delay_s: float = FIRST_DELAY_S

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> LoginPolicy:
        settings = settings or get_settings()
        return cls(settings.login_max_failures, settings.login_max_failures_per_ip,
                   timedelta(seconds=settings.login_failure_window_s),
                   settings.login_first_delay_ms / 1000)

    @property
    def max_delay_s(self) -> float:
        return self.first_delay_s * MAX_DELAY_FACTOR


def delay_s(failures: int, first_delay_s: float = FIRST_DELAY_S) -> float:
    """Seconds the next attempt waits after ``failures`` failures: 0, then 1, 2, 4, 8, 8...
    (times ``first_delay_s``)."""
    if failures <= 0:
        return 0.0
    return min(first_delay_s * 2 ** (failures - 1), first_delay_s * MAX_DELAY_FACTOR)


@dataclass(frozen=True)
class Verdict:
    wait_s: float  # 0: the attempt may go ahead
    locked: bool  # the wait is a lockout (the limit of failures), not a delay
    account_failures: int
    ip_failures: int

    @property
    def allowed(self) -> bool:
        return self.wait_s <= 0


def _wait(failures: Sequence[datetime], limit: int, window: timedelta, now: datetime,
          first_delay_s: float) -> tuple[float, bool, int]:
    """(seconds to wait, locked, failures in the window) for one key."""
    recent = sorted(at for at in failures if at > now - window)
    if len(recent) >= limit:
        return max((recent[-limit] + window - now).total_seconds(), 0.0), True, len(recent)
    if not recent:
        return 0.0, False, 0
    until = recent[-1] + timedelta(seconds=delay_s(len(recent), first_delay_s))
    return max((until - now).total_seconds(), 0.0), False, len(recent)


def verdict(account_failures: Sequence[datetime], ip_failures: Sequence[datetime],
            now: datetime, policy: LoginPolicy) -> Verdict:
    """May an attempt go ahead now, given the times of the e-mail's failures (since its last
    success) and of the IP's failures?"""
    account = _wait(account_failures, policy.max_failures, policy.window, now,
                    policy.first_delay_s)
    ip = _wait(ip_failures, policy.max_failures_per_ip, policy.window, now, policy.first_delay_s)
    return Verdict(max(account[0], ip[0]), account[1] or ip[1], account[2], ip[2])


def normalize_email(email: str) -> str:
    """The key failures of an e-mail count under: trimmed, lower-case, clipped."""
    return (email or "").strip().lower()[:EMAIL_CHARS]


# --- the table ---------------------------------------------------------------------------

def _failure_times(session: Session, *conditions) -> list[datetime]:
    return list(session.scalars(select(LoginAttempt.at).where(
        LoginAttempt.outcome.in_(COUNTED), *conditions)))


def current_verdict(session: Session, email: str, ip: str, *, now: datetime | None = None,
                    before_id: int | None = None, policy: LoginPolicy | None = None) -> Verdict:
    """The verdict for an attempt of ``email`` from ``ip`` now, from the recorded attempts
    (those before ``before_id`` only, when given: an attempt is not judged by itself or by
    attempts that came after it)."""
    policy = policy or LoginPolicy.from_settings()
    now = now or utcnow()
    since = now - policy.window
    earlier = [LoginAttempt.at > since]
    if before_id is not None:
        earlier.append(LoginAttempt.id < before_id)
    key = normalize_email(email)
    last_success = session.scalar(select(func.max(LoginAttempt.at)).where(
        LoginAttempt.email == key, LoginAttempt.outcome == "succeeded", *earlier))
    account_conditions = [LoginAttempt.email == key, *earlier]
    if last_success is not None:
        account_conditions.append(LoginAttempt.at > last_success)
    return verdict(_failure_times(session, *account_conditions),
                   _failure_times(session, LoginAttempt.ip == ip, *earlier), now, policy)


def start_attempt(session: Session, email: str, ip: str, user_agent: str, *,
                  policy: LoginPolicy | None = None,
                  settings: Settings | None = None) -> tuple[int, Verdict]:
    """Record an attempt and judge it: (its id, the verdict). A refused attempt is recorded
    as ``refused`` and must not be checked; an allowed one stays ``pending`` until
    ``finish_attempt``. Records older than the retention are dropped on the way."""
    settings = settings or get_settings()
    now = utcnow()
    session.execute(delete(LoginAttempt).where(
        LoginAttempt.at < now - timedelta(days=settings.login_attempts_retention_days)))
    attempt = LoginAttempt(at=now, email=normalize_email(email), ip=ip,
                           user_agent=(user_agent or "")[:USER_AGENT_CHARS], outcome="pending")
    session.add(attempt)
    session.flush()
    judged = current_verdict(session, email, ip, now=now, before_id=attempt.id,
                             policy=policy or LoginPolicy.from_settings(settings))
    if not judged.allowed:
        attempt.outcome = "refused"
    return attempt.id, judged


def finish_attempt(session: Session, attempt_id: int, *, succeeded: bool) -> None:
    attempt = session.get(LoginAttempt, attempt_id)
    if attempt is not None:
        attempt.outcome = "succeeded" if succeeded else "failed"


def recent_attempts(session: Session, limit: int = 500) -> list[LoginAttempt]:
    """The latest attempts, newest first (the Admin page)."""
    return list(session.scalars(select(LoginAttempt)
                                .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
                                .limit(limit)))

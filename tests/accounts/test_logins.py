"""Login guessing: the delay and lockout rule as a plain function, then applied to the
recorded attempts on both metadata backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts import logins
from accounts.db import session_scope
from accounts.logins import LoginPolicy, delay_s, verdict
from accounts.models import LoginAttempt, utcnow

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
POLICY = LoginPolicy(max_failures=5, max_failures_per_ip=10, window=timedelta(minutes=15))


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# --- the rule ----------------------------------------------------------------------------

def test_the_delay_grows_with_each_failure_and_stops_growing() -> None:
    assert [delay_s(n) for n in range(7)] == [0, 1, 2, 4, 8, 8, 8]


def test_the_first_delay_scales_every_delay() -> None:
    assert [delay_s(n, 0.25) for n in range(7)] == [0, 0.25, 0.5, 1, 2, 2, 2]
    quick = LoginPolicy(max_failures=5, max_failures_per_ip=10, window=timedelta(minutes=15),
                        first_delay_s=0.25)
    # three failures, the last one 0.5 s ago: the next try waits 1 s after it
    judged = verdict([ago(20), ago(10), ago(0.5)], [], NOW, quick)
    assert not judged.allowed and judged.wait_s == pytest.approx(0.5)
    assert quick.max_delay_s == 2


def test_no_failures_no_wait() -> None:
    judged = verdict([], [], NOW, POLICY)
    assert judged.allowed and judged.wait_s == 0 and not judged.locked


def test_each_failure_delays_the_next_attempt() -> None:
    # three failures, the last one a second ago: the next try waits 4 s after it
    judged = verdict([ago(20), ago(10), ago(1)], [], NOW, POLICY)
    assert not judged.allowed and not judged.locked
    assert judged.wait_s == pytest.approx(3)
    # once the delay has passed the attempt may go ahead
    assert verdict([ago(20), ago(10), ago(5)], [], NOW, POLICY).allowed


def test_five_failures_lock_the_account_until_the_oldest_leaves_the_window() -> None:
    failures = [ago(600), ago(300), ago(200), ago(100), ago(60)]
    judged = verdict(failures, [], NOW, POLICY)
    assert judged.locked and not judged.allowed
    assert judged.wait_s == pytest.approx(300)  # the one 600 s ago leaves at 900 s
    # waiting long enough (past the 8 s delay of the fourth failure) works again
    later = NOW + timedelta(seconds=301)
    assert verdict(failures, [], later, POLICY).allowed


def test_failures_outside_the_window_do_not_count() -> None:
    judged = verdict([ago(3600)] * 10, [ago(1000)] * 20, NOW, POLICY)
    assert judged.allowed and judged.account_failures == 0 and judged.ip_failures == 0


def test_the_ip_has_its_own_higher_limit() -> None:
    # nine failures of many e-mails from one IP: a delay; the tenth locks the IP
    nine = [ago(300 - 10 * i) for i in range(9)]
    assert not verdict([], nine, NOW, POLICY).locked
    assert verdict([], nine, NOW + timedelta(seconds=60), POLICY).allowed
    judged = verdict([], [*nine, ago(1)], NOW, POLICY)
    assert judged.locked and judged.wait_s == pytest.approx(600)


def test_the_longer_wait_decides() -> None:
    judged = verdict([ago(1)], [ago(600 - i) for i in range(10)], NOW, POLICY)
    assert judged.locked and judged.wait_s == pytest.approx(300)


# --- the recorded attempts ---------------------------------------------------------------

def _try(email: str, ip: str, *, succeed: bool) -> logins.Verdict:
    with session_scope() as session:
        attempt_id, judged = logins.start_attempt(session, email, ip, "pytest-agent")
    if judged.allowed:
        with session_scope() as session:
            logins.finish_attempt(session, attempt_id, succeeded=succeed)
    return judged


def _backdate(session: Session, email: str, seconds: float) -> None:
    """Move the e-mail's attempts back in time (instead of waiting out the delays)."""
    for attempt in session.scalars(select(LoginAttempt).where(LoginAttempt.email == email)):
        attempt.at = attempt.at - timedelta(seconds=seconds)


def test_attempts_are_recorded_and_counted_until_the_lockout(session: Session, unique) -> None:
    email, ip = unique("guess") + "@example.com", unique("ip")
    outcomes = []
    for _ in range(5):
        judged = _try(email.upper() + " ", ip, succeed=False)  # normalised like the login
        assert judged.allowed
        outcomes.append(judged.account_failures)
        with session_scope() as other:
            _backdate(other, email, 9)  # past each delay, well inside the window
    assert outcomes == [0, 1, 2, 3, 4]
    refused = _try(email, ip, succeed=True)  # the right password would not be checked now
    assert refused.locked and refused.wait_s > 800
    rows = session.scalars(select(LoginAttempt).where(LoginAttempt.email == email)
                           .order_by(LoginAttempt.id)).all()
    assert [r.outcome for r in rows] == ["failed"] * 5 + ["refused"]
    assert {(r.ip, r.user_agent) for r in rows} == {(ip, "pytest-agent")}
    # refused attempts are not failures: waiting out the window always works
    with session_scope() as other:
        _backdate(other, email, 900)
    assert _try(email, ip, succeed=True).allowed


def test_a_pending_attempt_makes_a_parallel_one_wait(session: Session, unique) -> None:
    email, ip = unique("parallel") + "@example.com", unique("ip")
    with session_scope() as first:
        first_id, first_verdict = logins.start_attempt(first, email, ip, "")
    assert first_verdict.allowed
    # while the first password is being checked, a second session tries the same e-mail
    with session_scope() as second:
        _, second_verdict = logins.start_attempt(second, email, unique("other-ip"), "")
    assert not second_verdict.allowed and second_verdict.account_failures == 1
    with session_scope() as first:
        logins.finish_attempt(first, first_id, succeeded=True)


def test_a_success_clears_the_account_count_but_not_the_ip_count(session: Session,
                                                                   unique) -> None:
    email, ip = unique("forgetful") + "@example.com", unique("ip")
    for _ in range(3):
        _try(email, ip, succeed=False)
        with session_scope() as other:
            _backdate(other, email, 9)
    assert _try(email, ip, succeed=True).account_failures == 3
    with session_scope() as other:
        judged = logins.current_verdict(other, email, ip)
    assert judged.account_failures == 0 and judged.ip_failures == 3


def test_unknown_and_known_emails_are_counted_alike(session: Session, unique) -> None:
    from accounts import service

    known = unique("known") + "@example.com"
    service.create_user(session, email=known, password="password123")
    session.commit()
    seen = []
    for email in (known, unique("nobody") + "@example.com"):
        ip = unique("ip")
        first = _try(email, ip, succeed=False)
        second = _try(email, ip, succeed=False)  # at once: within the first failure's delay
        seen.append((first.allowed, second.allowed, second.locked, second.account_failures,
                     round(second.wait_s / LoginPolicy.from_settings().first_delay_s)))
    assert seen[0] == seen[1] == (True, False, False, 1, 1)


def test_old_records_are_dropped(session: Session, unique) -> None:
    email = unique("old") + "@example.com"
    session.add(LoginAttempt(at=utcnow() - timedelta(days=91), email=email, ip="192.0.2.1",
                             outcome="failed"))
    session.commit()
    _try(unique("new") + "@example.com", "192.0.2.2", succeed=False)
    assert session.scalars(select(LoginAttempt).where(LoginAttempt.email == email)).all() == []


def test_recent_attempts_are_newest_first(session: Session, unique) -> None:
    email = unique("recent") + "@example.com"
    _try(email, "192.0.2.3", succeed=False)
    with session_scope() as other:
        _backdate(other, email, 9)
    _try(email, "192.0.2.3", succeed=True)
    mine = [a for a in logins.recent_attempts(session) if a.email == email]
    assert [a.outcome for a in mine] == ["succeeded", "failed"]

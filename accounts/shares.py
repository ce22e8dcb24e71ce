"""Public share links: read-only access to one project's overview without a login.

An admin creates a link for a project (optional password and expiry), lists and revokes them.
The token is ``secrets.token_urlsafe(32)`` (256 random bits) and only its sha256 is stored, so
a token is found with one indexed equality lookup (ADR 0016); a password is argon2-hashed like
a user's. Like every account function these take a ``Session`` first, raise ``AccountsError``
subclasses with messages fit to show, and leave committing to the caller.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts.errors import InvalidInput, NotFound
from accounts.hashing import burn_verify_time, hash_secret, verify_secret
from accounts.models import ShareLink, utcnow
from accounts.service import get_project
from accounts.validation import validate_password
from trackhouse.settings import get_settings

TOKEN_BYTES = 32
# urlsafe base64 of 32 bytes is 43 characters; anything else cannot be a token (not looked up)
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
LABEL_CHARS = 200
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def token_hash(token: str) -> str:
    """What the database keeps of a share token (a 256-bit random token needs no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def share_url(token: str, base_url: str | None = None) -> str:
    """The link to hand out: the dashboards' address with ``?share=<token>``."""
    if not base_url:
        settings = get_settings()
        base_url = settings.app_public_url or f"http://{settings.app_host}:{settings.app_port}"
    return f"{base_url.rstrip('/')}/?share={token}"


def parse_expiry(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """An expiry as given on the command line: a duration from now (``30m``, ``12h``, ``7d``,
    ``2w``), an ISO date (the end of that day, UTC) or an ISO time (UTC unless it has an
    offset); empty: never."""
    if text is None or not text.strip():
        return None
    now = now or utcnow()
    match = _DURATION.match(text)
    if match:
        amount = int(match.group(1))
        if amount <= 0:
            raise InvalidInput("an expiry duration must be positive, e.g. 7d")
        expires = now + timedelta(**{_UNITS[match.group(2)]: amount})
    else:
        value = text.strip()
        try:
            if len(value) == 10:
                day = date.fromisoformat(value)
                expires = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
            else:
                expires = datetime.fromisoformat(value)
                if expires.tzinfo is None:
                    expires = expires.replace(tzinfo=UTC)
        except (ValueError, OverflowError):
            raise InvalidInput(f"invalid expiry {text!r}: use a duration (30m, 12h, 7d, 2w), "
                               "a date (2027-01-31) or a time (2027-01-31T18:00+01:00)") from None
    if expires <= now:
        raise InvalidInput(f"the expiry {expires:%Y-%m-%d %H:%M} UTC is in the past")
    return expires


def create_share_link(session: Session, *, project_id: str, label: str = "",
                      password: str | None = None, expires_at: datetime | None = None,
                      created_by: str = "") -> tuple[ShareLink, str]:
    """Create a link; return it with its plaintext token, which is not kept anywhere (the
    caller shows the URL now)."""
    project = get_project(session, project_id)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput("an expiry needs a time zone")
        if expires_at <= utcnow():
            raise InvalidInput("the expiry is in the past")
    password_hash = None
    if password:  # empty: no password
        password_hash = hash_secret(validate_password(password))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink(project_id=project.id, token_hash=token_hash(token),
                     label=(label or "").strip()[:LABEL_CHARS], password_hash=password_hash,
                     created_by=(created_by or "")[:320], expires_at=expires_at)
    session.add(link)
    session.flush()
    return link, token


def list_share_links(session: Session, project_id: str | None = None) -> list[ShareLink]:
    """Links, newest first (revoked and expired ones too: the list is their record)."""
    query = select(ShareLink).order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
    if project_id is not None:
        query = query.where(ShareLink.project_id == project_id)
    return list(session.scalars(query))


def revoke_share_link(session: Session, link_id: int) -> ShareLink:
    """Revoke a link (idempotent): every session opened with it ends at its next run."""
    link = session.get(ShareLink, link_id)
    if link is None:
        raise NotFound(f"no share link with id {link_id}")
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        session.flush()
    return link


class LinkState(enum.StrEnum):
    OPEN = "open"
    UNKNOWN = "unknown"  # no such token (or not token-shaped): counts as a guess
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class SharedView:
    """What a share session may see: a plain snapshot (never an ORM object)."""

    link_id: int
    project_id: str
    has_password: bool
    expires_at: datetime | None


def _state(link: ShareLink | None, now: datetime) -> LinkState:
    if link is None:
        return LinkState.UNKNOWN
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if link.expires_at is not None and link.expires_at <= now:
        return LinkState.EXPIRED
    return LinkState.OPEN


def _snapshot(link: ShareLink) -> SharedView:
    return SharedView(link.id, link.project_id, link.has_password, link.expires_at)


def open_share_token(session: Session, token: str) -> tuple[LinkState, SharedView | None]:
    """Look a token up: its state, and the view for an open link."""
    link = None
    if isinstance(token, str) and TOKEN_PATTERN.match(token):
        link = session.scalar(select(ShareLink).where(ShareLink.token_hash == token_hash(token)))
    state = _state(link, utcnow())
    if state is not LinkState.OPEN or link is None:
        return state, None
    link.last_opened_at = utcnow()
    return state, _snapshot(link)


def share_link_state(session: Session, link_id: int) -> LinkState:
    """A link's state now (every run of a share session checks it: a revocation applies at
    once)."""
    return _state(session.get(ShareLink, link_id), utcnow())


def check_share_password(session: Session, link_id: int, password: str) -> bool:
    """True when the link is open and ``password`` is its password."""
    link = session.get(ShareLink, link_id)
    if link is None or _state(link, utcnow()) is not LinkState.OPEN:
        return False
    if link.password_hash is None:
        return True
    if not password:
        burn_verify_time("")  # answered as slowly as a wrong password
        return False
    return verify_secret(link.password_hash, password)

"""Login, logout and who may see what: every page runs only for a logged-in user.

Users live in the metadata database (``accounts``); passwords are argon2 hashes checked by
``accounts.service.authenticate_user``. The logged-in user is kept in ``st.session_state`` as a
plain snapshot (never an ORM object, which would outlive its database session).

A login survives a reload and opens in a new tab: logging in stores the sha256 of a random
32-byte token as a ``LoginSession`` row (with an expiry) and the browser keeps the token in a
cookie, which a new Streamlit session reads from ``st.context.cookies`` (the cookies of the
page's WebSocket request). Streamlit cannot send a Set-Cookie header from a script, so a tiny
component sets the cookie from JavaScript: it cannot be HttpOnly; it is SameSite=Strict,
Secure over https, and never in the URL. Every run checks the token again (one indexed
query), so logging out (which revokes it), its expiry or deleting the user ends the login
in every tab.

Guessing is slowed and then stopped by ``accounts.logins`` (progressive delay, lockout per
e-mail and per IP), which also records every attempt with its IP and user agent for the
Admin page. The IP is the WebSocket peer's, or what a trusted proxy
(``TRACKHOUSE_APP_TRUSTED_PROXIES``) forwards in ``x-forwarded-for``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import streamlit as st
from sqlalchemy import delete, select

from accounts import logins, service
from accounts.db import session_scope
from accounts.models import LoginSession, User, utcnow
from app.text import markdown_escape
from trackhouse.client_address import client_ip, is_trusted
from trackhouse.settings import get_settings

USER_KEY = "auth.user"
TOKEN_KEY = "auth.token"  # this browser's login token (server memory; the DB has its hash)
COOKIE_KEY = "auth.cookie"  # what the cookie component still has to write, if anything
REJECTED_KEY = "auth.rejected"  # a cookie token found invalid (not looked up again)
COOKIE_NAME = "trackhouse_login"
LOGIN_LIFETIME = timedelta(days=14)


@dataclass(frozen=True)
class SessionUser:
    id: int
    email: str
    name: str
    is_admin: bool


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    name: str
    domain: str
    timezone: str


def token_hash(token: str) -> str:
    """What the database keeps of a login token (a random 32-byte token needs no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _snapshot(user: User) -> SessionUser:
    return SessionUser(user.id, user.email, user.name, bool(user.is_admin))


def user_for_token(token: str) -> SessionUser | None:
    """The user of a login token that is neither revoked nor expired, or None."""
    with session_scope() as session:
        user = session.scalar(
            select(User).join(LoginSession, LoginSession.user_id == User.id)
            .where(LoginSession.token_hash == token_hash(token),
                   LoginSession.revoked_at.is_(None), LoginSession.expires_at > utcnow()))
        return None if user is None else _snapshot(user)


def _browser_token() -> str:
    try:
        value = st.context.cookies.get(COOKIE_NAME, "")
    except Exception:  # noqa: BLE001 - no request context (bare mode): no cookies
        return ""
    return value if isinstance(value, str) else ""  # AppTest's context is a stand-in


@dataclass(frozen=True)
class Requester:
    """Who is on the other end of this session's WebSocket, as far as we may believe it."""

    ip: str
    user_agent: str
    https: bool


def served_over_https(url: str | None, headers: Mapping[str, str], peer_trusted: bool) -> bool:
    """True when the browser reached the app over https: its own URL, the WebSocket's
    ``Origin`` (browsers send their page's origin) or a trusted proxy's
    ``x-forwarded-proto`` says so."""
    if (url or "").lower().startswith("https://"):
        return True
    if (headers.get("origin") or "").lower().startswith("https://"):
        return True
    forwarded = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
    return peer_trusted and forwarded == "https"


def requester_from(peer: str | None, headers: Mapping[str, str], url: str | None,
                   trusted_proxies: Iterable[str]) -> Requester:
    """The requester of a WebSocket from ``peer`` (None: loopback, as Streamlit reports it)
    with these (lower-case) headers."""
    peer = peer or "127.0.0.1"
    trusted = tuple(trusted_proxies)
    return Requester(ip=client_ip(peer, headers, trusted, secret_client=False),
                     user_agent=headers.get("user-agent") or "",
                     https=served_over_https(url, headers, is_trusted(peer, trusted)))


def requester() -> Requester:
    """This session's requester (loopback without a request context, as in AppTest)."""
    try:
        context_headers = st.context.headers
        # repeated headers (x-forwarded-for from two proxies) read as one list, in order
        headers = {key.lower(): ", ".join(context_headers.get_all(key))
                   for key in context_headers}
        peer, url = st.context.ip_address, st.context.url
    except Exception:  # noqa: BLE001 - no request context (bare mode, AppTest)
        headers, peer, url = {}, None, None
    return requester_from(peer if isinstance(peer, str) else None, headers,
                          url if isinstance(url, str) else None,
                          get_settings().app_trusted_proxies)


def _write_cookie(value: str, max_age_s: int) -> None:
    st.session_state[COOKIE_KEY] = {"name": COOKIE_NAME, "value": value, "max_age": max_age_s,
                                    "secure": requester().https, "nonce": uuid.uuid4().hex}


def current_user() -> SessionUser | None:
    """The logged-in user of this session, or of the browser's login cookie (after a reload
    or in a new tab); None when neither holds a valid login."""
    token = st.session_state.get(TOKEN_KEY)
    if not token:
        cookie = _browser_token()
        token = cookie if cookie != st.session_state.get(REJECTED_KEY) else ""
    if not token:
        return None
    user = user_for_token(token)
    if user is None:  # revoked (a logout in another tab), expired, or the user was deleted
        if st.session_state.get(USER_KEY) is not None:
            _forget_session()
        st.session_state[REJECTED_KEY] = token
        if token == _browser_token():
            _write_cookie("", 0)  # drop the stale cookie too
        return None
    st.session_state[USER_KEY] = user  # refreshed every run (a changed role applies at once)
    st.session_state[TOKEN_KEY] = token
    return user


@dataclass(frozen=True)
class LoginResult:
    user: SessionUser | None
    wait_s: float = 0.0  # refused before any check: seconds until the next try may go ahead
    locked: bool = False


def log_in(email: str, password: str, who: Requester | None = None) -> LoginResult:
    """Check the password unless the delay or lockout forbids trying now; record the attempt.

    A wrong password is answered only once the next try may go ahead (at most
    the policy's ``max_delay_s``): guessing from one session is slowed, and guesses from parallel
    sessions are refused meanwhile. Unknown e-mails are answered exactly like known ones.
    """
    who = who or requester()
    with session_scope() as session:
        attempt_id, judged = logins.start_attempt(session, email, who.ip, who.user_agent)
    if not judged.allowed:
        return LoginResult(None, judged.wait_s, judged.locked)
    token = secrets.token_urlsafe(32)
    with session_scope() as session:
        user = service.authenticate_user(session, email.strip(), password)
        logins.finish_attempt(session, attempt_id, succeeded=user is not None)
        if user is not None:
            snapshot = _snapshot(user)
            session.add(LoginSession(user_id=user.id, token_hash=token_hash(token),
                                     expires_at=utcnow() + LOGIN_LIFETIME))
            # expired logins (revoked or not) are of no use any more: the table stays small
            session.execute(delete(LoginSession).where(LoginSession.expires_at <= utcnow()))
    if user is None:
        with session_scope() as session:
            after = logins.current_verdict(session, email, who.ip)
        time.sleep(min(after.wait_s, logins.LoginPolicy.from_settings().max_delay_s))
        return LoginResult(None)
    st.session_state[USER_KEY] = snapshot
    st.session_state[TOKEN_KEY] = token
    _write_cookie(token, int(LOGIN_LIFETIME.total_seconds()))
    return LoginResult(snapshot)


def _forget_session() -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def log_out() -> None:
    """Revoke this login (every tab sharing its cookie is logged out), forget the user and
    everything the session chose (project, filters), and delete the cookie."""
    token = st.session_state.get(TOKEN_KEY) or _browser_token()
    if token:
        with session_scope() as session:
            row = session.scalar(select(LoginSession)
                                 .where(LoginSession.token_hash == token_hash(token)))
            if row is not None and row.revoked_at is None:
                row.revoked_at = utcnow()
    _forget_session()
    # the cookie this session started with is not a login any more, even before the browser
    # has deleted it
    st.session_state[REJECTED_KEY] = _browser_token()
    _write_cookie("", 0)


# Sets (or, with max_age 0, deletes) the login cookie in the page itself (not an iframe), then
# reports the nonce back so the session stops rendering it.
_COOKIE_JS = """
export default function ({ data, setStateValue }) {
    if (!data || !data.name) return;
    const https = data.secure || window.location.protocol === "https:";
    const secure = https ? "; Secure" : "";
    document.cookie = `${data.name}=${data.value}; Path=/; Max-Age=${data.max_age}`
        + `; SameSite=Strict${secure}`;
    setStateValue("written", data.nonce);
}
"""


@st.cache_resource
def _cookie_component() -> Any:
    return st.components.v2.component("trackhouse_login_cookie", js=_COOKIE_JS)


def sync_cookie() -> None:
    """Render the cookie writer while the session has a cookie change to make (after logging
    in or out); it disappears once the browser reports the write."""
    pending = st.session_state.get(COOKIE_KEY)
    if pending is None:
        return
    result = _cookie_component()(data=pending, key="auth.cookie_writer",
                                 on_written_change=lambda: None, height=0)
    if getattr(result, "written", None) == pending["nonce"]:
        del st.session_state[COOKIE_KEY]


def visible_projects(user: SessionUser) -> list[ProjectInfo]:
    """The projects this user may see: all for an admin, granted ones for a viewer.

    Read on every run (a cheap indexed query), so a revoked grant takes effect at once.
    """
    with session_scope() as session:
        return [ProjectInfo(p.id, p.name, p.domain or "", p.timezone or "UTC")
                for p in service.projects_for_user(session, user.id)]


def login_page() -> None:
    st.title("Trackhouse")
    st.caption("Log in to see your projects' analytics.")
    with st.form("login"):
        email = st.text_input("E-mail", key="login.email")
        password = st.text_input("Password", type="password", key="login.password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        result = log_in(email, password)
        if result.user is not None:
            st.rerun()
        st.error(refusal_message(result))


def refusal_message(result: LoginResult) -> str:
    """What a refused login is told: the same words whether the e-mail exists or not."""
    if result.locked:
        minutes = max(1, round(result.wait_s / 60))
        return (f"Too many failed logins for this e-mail or from this address: try again in "
                f"{minutes} min.")
    if result.wait_s > 0:
        return f"Too many failed logins: try again in {max(1, round(result.wait_s))} s."
    return "Wrong e-mail or password."


def sidebar_account(user: SessionUser) -> None:
    with st.sidebar:
        role = "admin" if user.is_admin else "viewer"
        st.caption(f"Signed in as **{markdown_escape(user.email)}** ({role})")
        if st.button("Log out", key="logout"):
            log_out()
            st.rerun()

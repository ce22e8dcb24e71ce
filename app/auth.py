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
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import streamlit as st
from sqlalchemy import delete, select

from accounts import service
from accounts.db import session_scope
from accounts.models import LoginSession, User, utcnow

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


def _write_cookie(value: str, max_age_s: int) -> None:
    st.session_state[COOKIE_KEY] = {"name": COOKIE_NAME, "value": value, "max_age": max_age_s,
                                    "nonce": uuid.uuid4().hex}


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


def log_in(email: str, password: str) -> SessionUser | None:
    token = secrets.token_urlsafe(32)
    with session_scope() as session:
        user = service.authenticate_user(session, email.strip(), password)
        if user is None:
            return None
        snapshot = _snapshot(user)
        session.add(LoginSession(user_id=user.id, token_hash=token_hash(token),
                                 expires_at=utcnow() + LOGIN_LIFETIME))
        # expired logins (revoked or not) are of no use any more: the table stays small
        session.execute(delete(LoginSession).where(LoginSession.expires_at <= utcnow()))
    st.session_state[USER_KEY] = snapshot
    st.session_state[TOKEN_KEY] = token
    _write_cookie(token, int(LOGIN_LIFETIME.total_seconds()))
    return snapshot


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
    const secure = window.location.protocol === "https:" ? "; Secure" : "";
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
        if log_in(email, password) is None:
            st.error("Wrong e-mail or password.")
        else:
            st.rerun()


def sidebar_account(user: SessionUser) -> None:
    with st.sidebar:
        role = "admin" if user.is_admin else "viewer"
        st.caption(f"Signed in as **{user.email}** ({role})")
        if st.button("Log out", key="logout"):
            log_out()
            st.rerun()

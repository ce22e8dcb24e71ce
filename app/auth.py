"""Login, logout and who may see what: every page runs only for a logged-in user.

Users live in the metadata database (``accounts``); passwords are argon2 hashes checked by
``accounts.service.authenticate_user``. The logged-in user is kept in ``st.session_state`` as a
plain snapshot (never an ORM object, which would outlive its database session).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from accounts import service
from accounts.db import session_scope

USER_KEY = "auth.user"


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


def current_user() -> SessionUser | None:
    return st.session_state.get(USER_KEY)


def log_in(email: str, password: str) -> SessionUser | None:
    with session_scope() as session:
        user = service.authenticate_user(session, email.strip(), password)
        if user is None:
            return None
        snapshot = SessionUser(user.id, user.email, user.name, bool(user.is_admin))
    st.session_state[USER_KEY] = snapshot
    return snapshot


def log_out() -> None:
    """Forget the user and everything the session chose (project, filters)."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]


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

"""Share sessions: ``?share=<token>`` on the app's URL opens one project's overview, read-only.

A session that arrives with the parameter is a share session for its whole life: it never
becomes a login (a logged-in browser sees only the shared view too), its navigation holds
only the shared overview, and its project comes from the link, never from the URL or a
picker. The token is looked up once per session; every later run re-reads the link by id, so
a revocation or the expiry ends it at once. Token guesses and password guesses go through the
login-guessing limits (``accounts.logins``, ADR 0007): an unknown token counts against the
requesting IP (under the key ``share-token <ip>``, never one shared key, which would let
anyone lock every link), a wrong password against the link and the IP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from accounts import logins, service, shares
from accounts.db import session_scope
from accounts.shares import LinkState, SharedView
from app.auth import ProjectInfo, requester
from app.page_context import PROJECT_KEY
from app.text import markdown_escape

PARAM = "share"
VIEW_KEY = "share.view"  # the SharedView this session opened
STATE_KEY = "share.state"  # why this share session shows no data (a LinkState or "limited")
WAIT_KEY = "share.wait_s"
UNLOCKED_KEY = "share.unlocked"  # the link id whose password this session gave
LIMITED = "limited"
PAGES = Path(__file__).parent / "app_pages"

MESSAGES = {
    LinkState.UNKNOWN: "This share link is not valid. Check that you copied all of it, or ask "
                       "the person who shared it for a new one.",
    LinkState.REVOKED: "This share link has been revoked. Ask the person who shared it for a "
                       "new one.",
    LinkState.EXPIRED: "This share link has expired. Ask the person who shared it for a new "
                       "one.",
}


@dataclass(frozen=True)
class ShareSession:
    view: SharedView | None  # None: refused (see ``STATE_KEY``)
    project: ProjectInfo | None
    unlocked: bool


def _refuse(state: str, wait_s: float = 0.0) -> ShareSession:
    st.session_state.pop(VIEW_KEY, None)
    st.session_state.pop(PROJECT_KEY, None)
    st.session_state[STATE_KEY] = state
    st.session_state[WAIT_KEY] = wait_s
    return ShareSession(None, None, False)


def _wait_out(key: str, ip: str) -> None:
    """Answer a failure only once the next try may go ahead (at most the login policy's
    ``max_delay_s``), as a wrong login password is: one tab is slowed, parallel guesses are
    refused meanwhile."""
    with session_scope() as session:
        after = logins.current_verdict(session, key, ip)
    time.sleep(min(after.wait_s, logins.LoginPolicy.from_settings().max_delay_s))


def _open(token: str) -> ShareSession:
    who = requester()
    with session_scope() as session:
        attempt_id, judged = logins.start_attempt(session, f"share-token {who.ip}", who.ip,
                                                  who.user_agent)
    if not judged.allowed:
        return _refuse(LIMITED, judged.wait_s)
    with session_scope() as session:
        state, view = shares.open_share_token(session, token)
        logins.finish_attempt(session, attempt_id, succeeded=state is LinkState.OPEN)
    if view is None:
        _wait_out(f"share-token {who.ip}", who.ip)
        return _refuse(state)
    st.session_state[VIEW_KEY] = view
    st.session_state.pop(STATE_KEY, None)
    return _current(view)


def _current(view: SharedView) -> ShareSession:
    with session_scope() as session:
        state = shares.share_link_state(session, view.link_id)
        if state is not LinkState.OPEN:
            return _refuse(state)
        project = service.get_project(session, view.project_id)
        info = ProjectInfo(project.id, project.name, project.domain or "",
                           project.timezone or "UTC")
    unlocked = not view.has_password or st.session_state.get(UNLOCKED_KEY) == view.link_id
    return ShareSession(view, info, unlocked)


def share_session() -> ShareSession | None:
    """This session's share state, or None when it is no share session (the login applies)."""
    view = st.session_state.get(VIEW_KEY)
    if view is not None:
        return _current(view)
    if STATE_KEY in st.session_state:
        if st.session_state[STATE_KEY] == LIMITED and PARAM in st.query_params:
            return _open(st.query_params.get(PARAM) or "")  # the wait may be over: try again
        return ShareSession(None, None, False)
    if PARAM in st.query_params:
        return _open(st.query_params.get(PARAM) or "")
    return None


def refused_page() -> None:
    st.title("Trackhouse")
    state = st.session_state.get(STATE_KEY)
    if state == LIMITED:
        wait = max(1, round(st.session_state.get(WAIT_KEY, 0)))
        st.error(f"Too many failed attempts from this address: try again in {wait} s.")
    else:
        st.error(MESSAGES.get(state, MESSAGES[LinkState.UNKNOWN]))


def password_page() -> None:
    view: SharedView = st.session_state[VIEW_KEY]
    st.title("Trackhouse")
    st.caption("This shared dashboard is protected by a password.")
    with st.form("share.password"):
        password = st.text_input("Password", type="password", key="share.password_input")
        submitted = st.form_submit_button("Open", type="primary")
    if not submitted:
        return
    who = requester()
    key = f"share-link #{view.link_id}"
    with session_scope() as session:
        attempt_id, judged = logins.start_attempt(session, key, who.ip, who.user_agent)
    if not judged.allowed:
        st.error(f"Too many wrong passwords: try again in {max(1, round(judged.wait_s))} s.")
        return
    with session_scope() as session:
        right = shares.check_share_password(session, view.link_id, password)
        logins.finish_attempt(session, attempt_id, succeeded=right)
    if right:
        st.session_state[UNLOCKED_KEY] = view.link_id
        st.rerun()
    _wait_out(key, who.ip)
    st.error("Wrong password.")


def navigation(shared: ShareSession):  # noqa: ANN201 - Streamlit's StreamlitPage
    """The navigation of a share session: the error, the password form or the overview."""
    if shared.view is None or shared.project is None:
        return st.navigation([st.Page(refused_page, title="Shared dashboard", url_path="shared")],
                             position="hidden")
    if not shared.unlocked:
        return st.navigation([st.Page(password_page, title="Shared dashboard",
                                      url_path="shared")], position="hidden")
    with st.sidebar:
        st.caption(f"Shared view of **{markdown_escape(shared.project.name)}** (read-only)")
    return st.navigation([st.Page(PAGES / "overview.py", title="Overview",
                                  icon=":material/monitoring:", default=True)],
                         position="hidden")

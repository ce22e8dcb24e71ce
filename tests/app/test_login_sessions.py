"""Login sessions (the cookie behind a login that survives a reload): only valid, unexpired,
unrevoked tokens of existing users log anyone in, and a login revoked elsewhere ends at the
next run. The browser side (cookie, reload, new tab) is in test_browser.py."""

from __future__ import annotations

from datetime import timedelta

import dashboard_fixture as fd
from dashboard_fixture import PASSWORD, DashboardData
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from test_pages import MAIN, log_in

from app import auth


def _new_user(email: str) -> int:
    from accounts import service
    from accounts.db import session_scope

    with session_scope() as session:
        return service.create_user(session, email=email, password=PASSWORD,
                                   project_ids=[fd.BLOG]).id


def _add_login(user_id: int, token: str, *, expires_in: timedelta,
               revoked: bool = False) -> None:
    from accounts.db import session_scope
    from accounts.models import LoginSession, utcnow

    with session_scope() as session:
        session.add(LoginSession(user_id=user_id, token_hash=auth.token_hash(token),
                                 expires_at=utcnow() + expires_in,
                                 revoked_at=utcnow() if revoked else None))


def test_only_live_tokens_of_existing_users_log_in(dashboard_data: DashboardData) -> None:
    from accounts import service
    from accounts.db import session_scope

    user_id = _new_user("tokens@dash.test")
    _add_login(user_id, "live-token", expires_in=timedelta(days=1))
    _add_login(user_id, "expired-token", expires_in=timedelta(seconds=-1))
    _add_login(user_id, "revoked-token", expires_in=timedelta(days=1), revoked=True)
    live = auth.user_for_token("live-token")
    assert live is not None and live.email == "tokens@dash.test"
    assert auth.user_for_token("expired-token") is None
    assert auth.user_for_token("revoked-token") is None
    assert auth.user_for_token("never-issued") is None
    with session_scope() as session:
        service.delete_user(session, user_id)
    assert auth.user_for_token("live-token") is None  # its login sessions went with it


def test_logging_in_stores_only_the_hash_and_a_revoked_login_ends_at_the_next_run(
        dashboard_data: DashboardData) -> None:
    from accounts.db import session_scope
    from accounts.models import LoginSession, utcnow

    user_id = _new_user("revoked.elsewhere@dash.test")
    _add_login(user_id, "long-expired", expires_in=timedelta(days=-20))
    at = log_in(AppTest.from_file(str(MAIN), default_timeout=60), "revoked.elsewhere@dash.test")
    assert at.metric  # logged in
    token = at.session_state[auth.TOKEN_KEY]
    with session_scope() as session:
        # logging in cleared the expired logins away
        assert session.scalar(select(LoginSession).where(
            LoginSession.token_hash == auth.token_hash("long-expired"))) is None
        row = session.scalar(select(LoginSession)
                             .where(LoginSession.token_hash == auth.token_hash(token)))
        assert row is not None and token not in row.token_hash
        assert timedelta(days=13) < row.expires_at - utcnow() <= auth.LOGIN_LIFETIME
        row.revoked_at = utcnow()  # e.g. logged out in another tab
    at.run()
    assert not at.metric
    assert [t.value for t in at.title] == ["Trackhouse"]

"""Share links through Streamlit's AppTest: the Admin tab creates (link shown once), lists and
revokes them; a share session registers only the overview (no other page can be switched to)
and its figures are its project's."""

from __future__ import annotations

from datetime import timedelta

import dashboard_fixture as fd
import pytest
from dashboard_fixture import ADMIN, DashboardData
from test_pages import PAGES, app_test, assert_no_exception, expected_cards, kpi_values, log_in

from queries.periods import Preset


def test_admin_creates_lists_and_revokes_a_share_link(dashboard_data: DashboardData,
                                                      forget_login_attempts) -> None:
    from accounts import shares
    from accounts.db import session_scope
    from accounts.models import utcnow

    at = log_in(app_test(project=fd.SHOP), ADMIN)
    at.switch_page("app_pages/admin.py").run()
    at.selectbox(key="admin.share.project").select(fd.BLOG)
    at.text_input(key="admin.share.label").input("apptest board")
    at.text_input(key="admin.share.password").input("board-password")
    at.selectbox(key="admin.share.expiry").select("7d")
    at.button(key="FormSubmitter:admin.share.create-Create share link").click().run()
    assert_no_exception(at)
    shown = [c.value for c in at.code if "?share=" in c.value]
    assert len(shown) == 1
    token = shown[0].split("?share=", 1)[1].strip()
    with session_scope() as session:
        [link] = [link for link in shares.list_share_links(session, fd.BLOG)
                  if link.label == "apptest board"]
        assert link.token_hash == shares.token_hash(token) and link.created_by == ADMIN
        assert link.has_password and link.expires_at is not None
        assert timedelta(days=6) < link.expires_at - utcnow() <= timedelta(days=7)
        link_id = link.id
    at.run()
    assert not [c for c in at.code if "?share=" in c.value]  # shown only once

    at.selectbox(key="admin.share.revoke_id").select(link_id)
    at.button(key="FormSubmitter:admin.share.revoke-Revoke").click().run()
    assert_no_exception(at)
    with session_scope() as session:
        assert shares.share_link_state(session, link_id) is shares.LinkState.REVOKED

    # bad input: a short password gets its message, no link
    at.text_input(key="admin.share.password").input("short")
    at.button(key="FormSubmitter:admin.share.create-Create share link").click().run()
    assert any("8 characters" in e.value for e in at.error)


@pytest.fixture
def shop_link(dashboard_data: DashboardData):
    from accounts import shares
    from accounts.db import session_scope
    from accounts.models import ShareLink

    with session_scope() as session:
        link, token = shares.create_share_link(session, project_id=fd.SHOP, label="apptest")
        link_id = link.id
    yield token
    with session_scope() as session:
        session.delete(session.get(ShareLink, link_id))


def test_a_share_session_registers_only_the_overview(dashboard_data: DashboardData,
                                                     shop_link: str,
                                                     forget_login_attempts) -> None:
    at = app_test(share=shop_link, project=fd.BLOG, range="30d")
    at.run()
    assert_no_exception(at)
    assert kpi_values(at) == expected_cards(dashboard_data, fd.SHOP, Preset.LAST_30_DAYS)
    assert (at.query_params["project"], at.query_params["share"]) == (fd.SHOP, shop_link)
    assert not [box for box in at.sidebar.selectbox if box.label == "Project"]
    assert not [b for b in at.button if b.label in ("Log out", "Log in")]
    for page in PAGES:
        if page == "overview":
            continue
        with pytest.raises(Exception):  # noqa: B017 - the page is not registered at all
            at.switch_page(f"app_pages/{page}.py").run()


def test_a_share_session_applies_filters_from_the_url(dashboard_data: DashboardData,
                                                      shop_link: str,
                                                      forget_login_attempts) -> None:
    at = app_test(share=shop_link, range="30d", f=["country|is|DE"])
    at.run()
    assert_no_exception(at)
    expected = expected_cards(dashboard_data, fd.SHOP, Preset.LAST_30_DAYS,
                              session_match=lambda e: e.country == "DE")
    assert kpi_values(at) == expected and expected[0] != "0"


def _failures(key: str, count: int) -> None:
    """Record ``count`` failed attempts of ``key`` from 127.0.0.1 (AppTest's address) now."""
    from accounts.db import session_scope
    from accounts.models import LoginAttempt, utcnow

    with session_scope() as session:
        session.add_all(LoginAttempt(at=utcnow(), email=key, ip="127.0.0.1", outcome="failed")
                        for _ in range(count))


def test_token_guessing_locks_the_address_out_of_every_link(dashboard_data: DashboardData,
                                                            shop_link: str,
                                                            forget_login_attempts) -> None:
    _failures("share-token 127.0.0.1", 5)  # five unknown tokens from this address
    at = app_test(share=shop_link)
    at.run()
    assert_no_exception(at)
    assert not at.metric
    assert any("Too many failed attempts" in e.value for e in at.error)


def test_password_guessing_locks_the_link(dashboard_data: DashboardData,
                                          forget_login_attempts) -> None:
    from accounts import shares
    from accounts.db import session_scope
    from accounts.models import ShareLink

    with session_scope() as session:
        link, token = shares.create_share_link(session, project_id=fd.SHOP,
                                               password="the-right-one")
        link_id = link.id
    try:
        at = app_test(share=token)
        at.run()
        assert not at.metric
        _failures(f"share-link #{link_id}", 5)  # five wrong passwords for this link
        at.text_input(key="share.password_input").input("the-right-one")
        at.button(key="FormSubmitter:share.password-Open").click().run()
        assert_no_exception(at)
        assert not at.metric  # even the right password is refused during the lockout
        assert any("Too many wrong passwords" in e.value for e in at.error)
    finally:
        with session_scope() as session:
            session.delete(session.get(ShareLink, link_id))

"""Public share links in a real browser (Debian's chromium via Playwright): a link opens its
project's overview with the right figures and nothing else (no other project, page, picker or
login), a revoked or expired link shows an error, a password-protected one asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import dashboard_fixture as fd
import pytest
from dashboard_fixture import DashboardData
from playwright.sync_api import Page, expect
from test_browser import ARTIFACTS, dashboard_url, metric_values, page  # noqa: F401 - fixtures

from app import charts
from queries.periods import Preset, preset_range

LINK_PASSWORD = "shared-secret-9"


@dataclass(frozen=True)
class Links:
    open: str
    revoked: str
    expired: str
    protected: str
    revoked_id: int


@pytest.fixture(scope="module")
def links(dashboard_data: DashboardData) -> Iterator[Links]:
    from accounts import shares
    from accounts.db import session_scope
    from accounts.models import ShareLink, utcnow

    with session_scope() as session:
        made = {name: shares.create_share_link(session, project_id=fd.SHOP, label=name,
                                               password=LINK_PASSWORD if name == "protected"
                                               else None,
                                               expires_at=utcnow() + timedelta(days=1))
                for name in ("open", "revoked", "expired", "protected")}
        shares.revoke_share_link(session, made["revoked"][0].id)
        made["expired"][0].expires_at = utcnow() - timedelta(minutes=1)
        ids = [link.id for link, _ in made.values()]
        revoked_id = made["revoked"][0].id
    yield Links(*(token for _, token in made.values()), revoked_id=revoked_id)
    with session_scope() as session:
        for link_id in ids:
            session.delete(session.get(ShareLink, link_id))


def _overview(tab: Page) -> None:
    expect(tab.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
    expect(tab.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=60_000)


def _nothing_else(tab: Page) -> None:
    """Only the shared overview: no navigation, project picker, login or account."""
    expect(tab.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
    expect(tab.get_by_text("Dash blog")).to_have_count(0)
    for absent in ("Project", "E-mail"):
        expect(tab.get_by_label(absent, exact=True)).to_have_count(0)
    for title in ("Profiles", "Admin", "Events", "Explore", "Log in"):
        expect(tab.get_by_role("heading", name=title, exact=True)).to_have_count(0)
    expect(tab.get_by_role("button", name="Log out")).to_have_count(0)
    expect(tab.locator('[data-testid="stException"]')).to_have_count(0)


def test_a_link_shows_its_projects_overview_and_nothing_else(
        dashboard_url: str, page: Page, dashboard_data: DashboardData,  # noqa: F811
        links: Links, forget_login_attempts) -> None:
    page.goto(f"{dashboard_url}/?share={links.open}&range=30d")
    _overview(page)
    date_range = preset_range(Preset.LAST_30_DAYS, fd.PROJECT_ZONES[fd.SHOP])
    figures = fd.expected_kpis(dashboard_data.events, fd.SHOP, date_range.start, date_range.end)
    assert metric_values(page) == charts.format_kpis(figures)
    expect(page.get_by_text("Shared view of Dash shop")).to_be_visible()
    for tile in ("Pages", "Sources", "Locations", "Devices"):
        expect(page.get_by_role("heading", name=tile, exact=True)).to_be_visible()
    _nothing_else(page)
    assert f"share={links.open}" in page.url  # a reload keeps the shared view
    page.screenshot(path=str(ARTIFACTS / "share-overview.png"), full_page=True)

    # URL manipulation: another project, other pages; the link's project is all there is
    for path in (f"/profiles?share={links.open}&project={fd.BLOG}&range=today",
                 f"/admin?share={links.open}&range=today"):
        page.goto(dashboard_url + path)
        _overview(page)
        expect(page.get_by_text("Dash shop").first).to_be_visible()
        _nothing_else(page)
        assert f"project={fd.BLOG}" not in page.url, page.url


@pytest.mark.parametrize("case", ["revoked", "expired", "unknown"])
def test_revoked_expired_and_unknown_links_show_an_error(
        dashboard_url: str, page: Page, links: Links, case: str,  # noqa: F811
        forget_login_attempts) -> None:
    from sqlalchemy import select

    from accounts.db import session_scope
    from accounts.models import LoginAttempt

    token, message = {
        "revoked": (links.revoked, "has been revoked"),
        "expired": (links.expired, "has expired"),
        # one character off a working token
        "unknown": (links.open[:-1] + ("A" if links.open[-1] != "A" else "B"), "is not valid"),
    }[case]
    page.goto(f"{dashboard_url}/?share={token}&project={fd.SHOP}")
    expect(page.get_by_text(f"This share link {message}")).to_be_visible(timeout=30_000)
    expect(page.locator('[data-testid="stMetricValue"]')).to_have_count(0)
    _nothing_else(page)
    page.screenshot(path=str(ARTIFACTS / f"share-{case}.png"), full_page=True)
    with session_scope() as session:  # a refused token counts toward the guessing limits
        outcomes = session.scalars(select(LoginAttempt.outcome).where(
            LoginAttempt.email == "share-token 127.0.0.1").order_by(LoginAttempt.id)).all()
    assert outcomes[-1:] == ["failed"]


def test_a_password_protected_link_asks_for_it_and_revocation_ends_it(
        dashboard_url: str, page: Page, links: Links,  # noqa: F811
        forget_login_attempts) -> None:
    from accounts import shares
    from accounts.db import session_scope

    page.goto(f"{dashboard_url}/?share={links.protected}&range=30d")
    password = page.get_by_role("textbox", name="Password")
    expect(password).to_be_visible(timeout=30_000)
    expect(page.locator('[data-testid="stMetricValue"]')).to_have_count(0)
    password.fill("not-the-password")
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_text("Wrong password.")).to_be_visible(timeout=30_000)
    expect(page.locator('[data-testid="stMetricValue"]')).to_have_count(0)
    password.fill(LINK_PASSWORD)
    page.get_by_role("button", name="Open").click()
    _overview(page)
    assert len(metric_values(page)) == 6
    _nothing_else(page)

    with session_scope() as session:  # revoked while open: the next run shows the error
        link_id = next(link.id for link in shares.list_share_links(session, fd.SHOP)
                       if link.label == "protected")
        shares.revoke_share_link(session, link_id)
    page.get_by_role("radiogroup", name="Chart").get_by_role("radio", name="Page views").click()
    expect(page.get_by_text("This share link has been revoked")).to_be_visible(timeout=30_000)
    expect(page.locator('[data-testid="stMetricValue"]')).to_have_count(0)


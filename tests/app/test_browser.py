"""A real browser (Debian's chromium driven by Playwright) logs in, opens every page, reads the
numbers a person sees and saves screenshots to tests/artifacts/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dashboard_fixture as fd
import pytest
from dashboard_fixture import ADMIN, PASSWORD, DashboardData
from playwright.sync_api import Page, expect, sync_playwright
from support import free_port, wait_for_http

from app import charts
from queries.periods import Preset, preset_range

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = ["Realtime", "Events", "Funnels", "Retention", "Profiles", "Admin"]


@pytest.fixture(scope="module")
def dashboard_url(dashboard_data: DashboardData, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("streamlit") / "app.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "trackhouse"), "app", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/_stcore/health", 60, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap.sh (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 2000})
        yield context.new_page()
        browser.close()


def metric_values(page: Page) -> list[str]:
    values = page.locator('[data-testid="stMetricValue"]')
    expect(values).to_have_count(6, timeout=30_000)
    return [text.strip() for text in values.all_inner_texts()]


STALE_NOTICE = "The marts are stale"


def test_a_person_logs_in_and_sees_every_page(dashboard_url: str, page: Page,
                                              dashboard_data: DashboardData,
                                              set_marts_built_at) -> None:
    set_marts_built_at(datetime.now(UTC) - timedelta(minutes=1))  # fresh marts
    page.goto(f"{dashboard_url}/?project={fd.SHOP}&range=30d")
    page.get_by_role("textbox", name="E-mail").fill(ADMIN)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
    expect(page.get_by_text(STALE_NOTICE)).to_have_count(0)

    date_range = preset_range(Preset.LAST_30_DAYS, fd.PROJECT_ZONES[fd.SHOP])
    figures = fd.expected_kpis(dashboard_data.events, fd.SHOP, date_range.start, date_range.end)
    assert metric_values(page) == charts.format_kpis(figures)
    expect(page.get_by_text("IP Geolocation by DB-IP")).to_be_visible()
    # the world map draws its countries from the copy Streamlit serves (no CDN)
    expect(page.locator("path.choroplethlocation").first).to_be_attached(timeout=30_000)
    page.wait_for_timeout(1000)  # let the charts draw before the screenshot
    page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

    for title in PAGES:
        page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
        expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=30_000)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        if title == "Realtime":
            live = page.locator('[data-testid="stMetricValue"]').first
            expect(live).to_be_visible(timeout=30_000)
            assert live.inner_text().replace(",", "").strip().isdigit()
        if title == "Events":  # the trend picker starts with the custom events of the range
            expect(page.get_by_role("button", name="Remove signup")).to_be_visible(timeout=30_000)
            expect(page.get_by_role("button", name="Remove purchase")).to_be_visible()
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{title.lower()}.png"), full_page=True)

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=30_000)


def test_a_login_survives_a_reload_and_a_new_tab_until_logout(
        dashboard_url: str, page: Page, dashboard_data: DashboardData) -> None:
    """The login cookie: a reload and a second tab stay logged in; logging out revokes the
    login everywhere and a reload shows the login page again."""
    from accounts.db import session_scope
    from accounts.models import LoginSession
    from app.auth import COOKIE_NAME, token_hash

    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        overview = f"{dashboard_url}/?project={fd.SHOP}&range=7d"
        tab.goto(overview)
        tab.get_by_role("textbox", name="E-mail").fill(ADMIN)
        tab.get_by_role("textbox", name="Password").fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        expect(tab.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
        cookie = _wait_for_cookie(context, COOKIE_NAME)
        assert cookie["sameSite"] == "Strict" and cookie["expires"] > time.time() + 86_400
        assert cookie["value"] not in tab.url
        with session_scope() as session:  # only the token's hash is stored
            row = session.query(LoginSession).filter_by(
                token_hash=token_hash(cookie["value"])).one()
            assert row.revoked_at is None and cookie["value"] not in row.token_hash

        tab.reload()
        expect(tab.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
        expect(tab.get_by_role("button", name="Log out")).to_be_visible()
        second = context.new_page()
        second.goto(overview)
        expect(second.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
        second.close()

        tab.get_by_role("button", name="Log out").click()
        expect(tab.get_by_role("button", name="Log in")).to_be_visible(timeout=30_000)
        with session_scope() as session:
            row = session.query(LoginSession).filter_by(
                token_hash=token_hash(cookie["value"])).one()
            assert row.revoked_at is not None
        tab.reload()
        expect(tab.get_by_role("button", name="Log in")).to_be_visible(timeout=30_000)
        expect(tab.get_by_role("heading", name="Overview")).to_have_count(0)
        # even a copy of the old cookie does not log anyone in any more
        context.add_cookies([{**cookie, "expires": time.time() + 3600}])
        tab.reload()
        expect(tab.get_by_role("button", name="Log in")).to_be_visible(timeout=30_000)
        expect(tab.get_by_role("heading", name="Overview")).to_have_count(0)
    finally:
        context.close()


def test_a_person_sees_when_the_marts_are_stale(dashboard_url: str, page: Page,
                                               dashboard_data: DashboardData,
                                               set_marts_built_at) -> None:
    """Built three hours ago: every analytics page says so, with the time on the project's
    clock. The app keeps the build time cached for FRESHNESS_TTL_S, hence the reloads."""
    from queries.freshness import FRESHNESS_TTL_S

    built_at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    set_marts_built_at(built_at)
    local = built_at.astimezone(ZoneInfo(fd.PROJECT_ZONES[fd.SHOP]))
    notice = page.locator('[data-testid="stAlert"]').filter(has_text=STALE_NOTICE)
    page.goto(f"{dashboard_url}/?project={fd.SHOP}&range=7d")
    page.get_by_role("textbox", name="E-mail").fill(ADMIN)  # the first test logged out
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    deadline = time.monotonic() + FRESHNESS_TTL_S + 15
    while not notice.count() and time.monotonic() < deadline:
        expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(2000)
        if not notice.count():
            page.reload()
    expect(notice).to_contain_text(f"{local:%Y-%m-%d %H:%M} (Europe/Berlin), 3 h ")
    page.screenshot(path=str(ARTIFACTS / "dashboard-stale-notice.png"), full_page=True)
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Retention").first.click()
    expect(page.get_by_role("heading", name="Retention").first).to_be_visible(timeout=30_000)
    expect(notice).to_be_visible()


def _wait_for_cookie(context, name: str, timeout_s: float = 15) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [c for c in context.cookies() if c["name"] == name and c["value"]]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"the browser got no {name} cookie within {timeout_s} s")

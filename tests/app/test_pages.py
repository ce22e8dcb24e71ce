"""Every page through Streamlit's AppTest: login gate, KPI values against the fixture's own
figures, filters (including hostile ones) from the URL, viewers' project scope, admin actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dashboard_fixture as fd
import pytest
from dashboard_fixture import ADMIN, PASSWORD, VIEWER, DashboardData
from streamlit.testing.v1 import AppTest

from app import charts
from queries.periods import Preset, preset_range
from trackhouse.settings import get_settings

MAIN = Path(__file__).resolve().parents[2] / "app" / "main.py"
PAGES = ["overview", "realtime", "events", "funnels", "retention", "profiles", "admin"]


def app_test(**query_params: str | list[str]) -> AppTest:
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.query_params = dict(query_params)
    return at


def log_in(at: AppTest, email: str, password: str = PASSWORD) -> AppTest:
    at.run()
    at.text_input(key="login.email").input(email)
    at.text_input(key="login.password").input(password)
    at.button[0].click().run()
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def kpi_values(at: AppTest) -> list[str]:
    return [m.value for m in at.metric]


def expected_cards(data: DashboardData, project_id: str, preset: Preset, **filters) -> list[str]:
    tz = fd.PROJECT_ZONES[project_id]
    date_range = preset_range(preset, tz)
    figures = fd.expected_kpis(data.events, project_id, date_range.start, date_range.end,
                               **filters)
    return charts.format_kpis(figures)


def test_nothing_is_reachable_without_logging_in(dashboard_data: DashboardData) -> None:
    at = app_test(project=fd.SHOP)
    at.run()
    assert_no_exception(at)
    assert [t.value for t in at.title] == ["Trackhouse"]
    assert not at.metric
    for page in PAGES:
        with pytest.raises(Exception):  # noqa: B017 - the page is not registered at all
            at.switch_page(f"app_pages/{page}.py").run()
        assert not at.metric


def test_a_wrong_password_is_refused(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(), ADMIN, "not the password")
    assert [e.value for e in at.error] == ["Wrong e-mail or password."]
    assert not at.metric


@pytest.mark.parametrize(("project_id", "preset"), [
    (fd.SHOP, Preset.LAST_7_DAYS), (fd.SHOP, Preset.LAST_30_DAYS), (fd.BLOG, Preset.LAST_7_DAYS),
    (fd.SHOP, Preset.YESTERDAY),
])
def test_overview_kpis_equal_the_fixture_figures(dashboard_data: DashboardData, project_id: str,
                                                 preset: Preset) -> None:
    at = log_in(app_test(project=project_id, range=preset.value), ADMIN)
    assert_no_exception(at)
    assert kpi_values(at) == expected_cards(dashboard_data, project_id, preset)
    # the delta compares with the equal-length period before
    date_range = preset_range(preset, fd.PROJECT_ZONES[project_id])
    before = date_range.previous()
    previous = fd.expected_kpis(dashboard_data.events, project_id, before.start, before.end)
    now = fd.expected_kpis(dashboard_data.events, project_id, date_range.start, date_range.end)
    assert at.metric[0].delta == charts.change(now["visitors"], previous["visitors"])
    assert at.query_params["project"] == project_id  # the view is in the URL


def test_filters_from_the_url_apply_to_the_kpis(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(project=fd.SHOP, range="30d", f=["country|is|DE", "path|contains|DOCS"]),
                ADMIN)
    assert_no_exception(at)
    expected = expected_cards(dashboard_data, fd.SHOP, Preset.LAST_30_DAYS,
                              session_match=lambda e: e.country == "DE",
                              event_match=lambda e: "docs" in e.path.lower())
    assert kpi_values(at) == expected
    assert expected[0] != "0"


@pytest.mark.parametrize("hostile", ["' OR 1=1 --", "DE' or '1'='1", "\\' or 1=1) --"])
def test_hostile_filter_values_cannot_change_the_sql(dashboard_data: DashboardData,
                                                     hostile: str) -> None:
    # "is <hostile>" matches nothing; "is not <hostile>" matches everything: the value is data.
    at = log_in(app_test(project=fd.SHOP, range="30d", f=[f"country|is|{hostile}"]), ADMIN)
    assert_no_exception(at)
    assert kpi_values(at) == ["0", "0", "0", "0.0%", "0m 00s", "0.00"]
    at = log_in(app_test(project=fd.SHOP, range="30d",
                         f=[f"country|is_not|{hostile}", f"prop:{hostile}|is_not|{hostile}"]),
                ADMIN)
    assert_no_exception(at)
    assert kpi_values(at) == expected_cards(dashboard_data, fd.SHOP, Preset.LAST_30_DAYS)


def test_every_page_renders_for_an_admin(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(project=fd.SHOP, range="30d"), ADMIN)
    assert_no_exception(at)
    for page in PAGES[1:]:
        at.switch_page(f"app_pages/{page}.py").run()
        assert_no_exception(at)
        assert at.title[0].value == page.capitalize()


def test_realtime_counts_the_last_five_minutes(dashboard_data: DashboardData) -> None:
    from datetime import UTC, datetime

    from accounts import service
    from accounts.db import session_scope
    from lifecycle.project_mirror import sync_projects
    from warehouse.client import warehouse

    project_id = "dash-live"  # its own project, so the other tests' figures stay put
    with session_scope() as session:
        service.create_project(session, name="Dash live", project_id=project_id)
    sync_projects()
    now = datetime.now(UTC)
    live = [fd.Event(project_id, "screen_view", f"live-{n}", now - timedelta(seconds=n),
                     path="/live") for n in range(4)]
    live += [fd.Event(project_id, "screen_view", "earlier", now - timedelta(minutes=12)),
             fd.Event(project_id, "screen_view", "crawler", now, is_bot=True)]
    client = warehouse()
    client.insert("trackhouse.events", fd.rows(live), column_names=fd.COLUMNS)
    client.close()
    at = log_in(app_test(project=project_id), ADMIN)
    at.switch_page("app_pages/realtime.py").run()
    assert_no_exception(at)
    assert at.metric[0].value == "4"  # devices in the last 5 minutes, the crawler not counted
    assert at.metric[1].value == "5"  # events in the last 30 minutes


@pytest.mark.parametrize(("page", "stale"), [
    ("overview", False), ("overview", True), ("retention", True), ("funnels", True)])
def test_stale_marts_show_a_notice_with_the_time_of_their_last_build(
    dashboard_data: DashboardData, set_marts_built_at, page: str, stale: bool
) -> None:
    """Stale: the last complete build (build_info) lies more than two schedule intervals back
    (TRACKHOUSE_MARTS_INTERVAL_MINUTES, 5 by default); a minute less is still fresh."""
    from queries.freshness import marts_built_at

    two_intervals = timedelta(minutes=2 * get_settings().marts_interval_minutes)
    now = datetime.now(UTC).replace(microsecond=0)
    built_at = now - two_intervals - timedelta(minutes=1) if stale else \
        now - two_intervals + timedelta(minutes=1)
    set_marts_built_at(built_at)
    marts_built_at.clear()
    at = log_in(app_test(project=fd.SHOP, range="7d"), ADMIN)
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py").run()
    assert_no_exception(at)
    notices = [w.value for w in at.warning if "stale" in w.value]
    if not stale:
        assert notices == []
        return
    local = built_at.astimezone(ZoneInfo(fd.PROJECT_ZONES[fd.SHOP]))
    assert notices == [
        f"The marts are stale: their last successful build was at {local:%Y-%m-%d %H:%M} "
        f"(Europe/Berlin), {int(two_intervals.total_seconds() // 60) + 1} min ago, and they "
        f"should be rebuilt every {get_settings().marts_interval_minutes} min. Figures may "
        "miss recent events; see the `incremental_marts` job in Dagster."]


def test_marts_without_a_recorded_build_show_a_notice(dashboard_data: DashboardData) -> None:
    """No build_info yet (a fresh install before dbt's first complete run): the pages say so."""
    from queries.freshness import marts_built_at
    from warehouse.client import warehouse

    analytics = get_settings().analytics_database
    client = warehouse()
    client.command(f"rename table {analytics}.build_info to {analytics}.build_info_hidden")
    try:
        marts_built_at.clear()
        at = log_in(app_test(project=fd.SHOP, range="7d"), ADMIN)
        assert_no_exception(at)
        assert [w.value for w in at.warning] == [
            "The marts have not been built yet: figures that come from them are missing until "
            "dbt's first complete run (Dagster's `incremental_marts` job)."]
    finally:
        client.command(f"rename table {analytics}.build_info_hidden to {analytics}.build_info")
        client.close()
        marts_built_at.clear()


def test_a_viewer_sees_only_granted_projects_and_no_admin(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(project=fd.SHOP, range="7d"), VIEWER)  # asks for a project not granted
    assert_no_exception(at)
    assert at.selectbox(key="view.project").options == ["Dash blog (blog.example)"]
    assert kpi_values(at) == expected_cards(dashboard_data, fd.BLOG, Preset.LAST_7_DAYS)
    with pytest.raises(Exception):  # noqa: B017 - Admin is not registered for viewers
        at.switch_page("app_pages/admin.py").run()


def test_logout_returns_to_the_login_page(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(), ADMIN)
    assert at.metric
    at.button(key="logout").click().run()
    assert [t.value for t in at.title] == ["Trackhouse"]
    assert not at.metric


def test_admin_creates_a_client_and_sees_its_secret_once(dashboard_data: DashboardData) -> None:
    from accounts import service
    from accounts.db import session_scope

    at = log_in(app_test(project=fd.SHOP), ADMIN)
    at.switch_page("app_pages/admin.py").run()
    at.selectbox(key="admin.client.project").select(fd.SHOP)
    at.text_input(key="admin.client.name").input("server key")
    at.button(key="FormSubmitter:admin.client.create-Create client").click().run()
    assert_no_exception(at)
    shown = [c.value for c in at.code if "client secret" in c.value]
    assert len(shown) == 1
    secret = shown[0].split("client secret: ")[1].strip()
    with session_scope() as session:
        created = [c for c in service.list_clients(session, fd.SHOP) if c.name == "server key"]
        assert len(created) == 1 and created[0].secret_hash and secret not in created[0].secret_hash
    at.run()
    assert not [c for c in at.code if "client secret" in c.value]  # shown only once


def test_a_filter_added_in_the_sidebar_lands_in_the_url(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(project=fd.SHOP, range="30d"), ADMIN)
    at.selectbox(key="filter.field").select("browser")
    at.selectbox(key="filter.op").select("is")
    at.text_input(key="filter.value").input("Safari")
    at.button(key="FormSubmitter:filter.add-Add filter").click().run()
    assert_no_exception(at)
    assert at.query_params["f"] == "browser|is|Safari"
    assert kpi_values(at) == expected_cards(dashboard_data, fd.SHOP, Preset.LAST_30_DAYS,
                                            session_match=lambda e: e.browser == "Safari")
    at.button(key="filter.remove.0").click().run()
    assert "f" not in at.query_params
    assert kpi_values(at) == expected_cards(dashboard_data, fd.SHOP, Preset.LAST_30_DAYS)


def test_custom_range_and_granularity(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(project=fd.SHOP, range="custom", **{"from": "2000-01-01",
                                                              "to": "2000-01-03"}, g="hour"),
                ADMIN)
    assert_no_exception(at)
    assert kpi_values(at) == ["0", "0", "0", "0.0%", "0m 00s", "0.00"]
    assert at.query_params["from"] == "2000-01-01" and at.query_params["g"] == "hour"


def test_profiles_search_traits_and_timeline(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(project=fd.SHOP), ADMIN)
    at.switch_page("app_pages/profiles.py").run()
    at.text_input(key="profiles.search").input("user-15").run()
    assert_no_exception(at)
    assert at.selectbox(key="profiles.chosen").options[0].startswith("user-15")
    timeline = at.dataframe[1].value
    expected = [e for e in fd.counted(dashboard_data.events, fd.SHOP) if e.profile_id == "user-15"]
    assert len(timeline) == len(expected) > 0
    assert sorted(timeline["name"]) == sorted(e.name for e in expected)


def test_admin_creates_a_viewer_with_access_to_one_project(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(), ADMIN)
    at.switch_page("app_pages/admin.py").run()
    at.text_input(key="admin.user.email").input("new.viewer@dash.test")
    at.text_input(key="admin.user.password").input("a long enough password")
    at.multiselect(key="admin.user.projects").select(fd.SHOP)
    at.button(key="FormSubmitter:admin.user.create-Create user").click().run()
    assert_no_exception(at)
    viewer = log_in(app_test(), "new.viewer@dash.test", "a long enough password")
    assert viewer.selectbox(key="view.project").options == ["Dash shop (shop.example)"]


def test_retention_applies_the_page_filters(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(project=fd.SHOP, range="30d", f="browser|is|Safari"), ADMIN)
    at.switch_page("app_pages/retention.py").run()
    assert_no_exception(at)
    assert any("first session matches" in c.value for c in at.caption)
    table = at.dataframe[0].value
    everyone = log_in(app_test(project=fd.SHOP, range="30d"), ADMIN)
    everyone.switch_page("app_pages/retention.py").run()
    unfiltered = everyone.dataframe[0].value
    # fewer visitors in period 0 than without the filter, and some
    assert 0 < table[table.period == 0].cohort_size.sum() \
        < unfiltered[unfiltered.period == 0].cohort_size.sum()

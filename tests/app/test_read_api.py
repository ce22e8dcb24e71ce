"""The read API against the dashboards' fixture data: real collector app (in-process), real
Redis, the real warehouse and real dbt marts. Requests are shaped like those of OpenPanel's
export docs and Plausible's Stats API v2 docs; figures are compared with the dashboards'
query layer (queries/) for the same project, range and filters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dashboard_fixture as fd
import pytest
import streamlit as st
from dashboard_fixture import DashboardData
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from test_dbt_only import analytics_relations, recorded_queries, tables_named

from queries import events as event_queries
from queries import overview
from queries.base import visitor_states
from queries.filters import Filter, Op
from queries.periods import Granularity, Preset, preset_range
from trackhouse.settings import Settings, get_settings

RANGE = preset_range(Preset.LAST_30_DAYS, fd.PROJECT_ZONES[fd.SHOP])
CUSTOM = [RANGE.start.isoformat(), RANGE.end.isoformat()]
DOMAIN = "shop.dash.test"
EVERY_METRIC = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
                "visit_duration", "events"]


@dataclass
class Clients:
    shop_read: tuple[str, str]
    shop_root: tuple[str, str]
    shop_write: tuple[str, str]
    blog_read: tuple[str, str]
    limited: tuple[str, str]


def _headers(pair: tuple[str, str]) -> dict[str, str]:
    return {"openpanel-client-id": pair[0], "openpanel-client-secret": pair[1]}


def _app(**overrides: Any) -> TestClient:
    from collector.main import create_app

    # generous failed-authentication limits: other modules' refusals from 127.0.0.1 count too
    settings = Settings(collector_failed_auth_limit_ip="100000/minute", **overrides)
    return TestClient(create_app(settings), client=("127.0.0.1", 50000),
                      base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def clients(dashboard_data: DashboardData, redis_server: Any) -> Clients:
    from accounts import service
    from accounts.db import session_scope

    made = {}
    with session_scope() as session:
        service.update_project(session, fd.SHOP, mirror=False, plausible_domain=DOMAIN)
        for name, project, kind in (("shop_read", fd.SHOP, "read"), ("shop_root", fd.SHOP, "root"),
                                    ("shop_write", fd.SHOP, "write"),
                                    ("blog_read", fd.BLOG, "read"), ("limited", fd.SHOP, "read")):
            client, secret = service.create_client(session, project_id=project, type=kind)
            made[name] = (client.id, secret)
    return Clients(**made)


@pytest.fixture(scope="module")
def api(clients: Clients) -> Iterator[TestClient]:
    # no per-client rate limit here (the fuzzing alone sends hundreds of requests); the limit
    # has a test and an app of its own
    with _app(read_api_rate_limit="") as client:
        yield client


def query(api: TestClient, body: dict[str, Any], pair: tuple[str, str]) -> Any:
    return api.post("/api/v2/query", json=body, headers=_headers(pair))


def figures(api: TestClient, clients: Clients, filters: tuple[Filter, ...] = (),
            plausible_filters: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    body = {"site_id": DOMAIN, "metrics": EVERY_METRIC, "date_range": CUSTOM,
            "filters": plausible_filters or [], **extra}
    answer = query(api, body, clients.shop_read)
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- authentication, limits, hosts ---------------------------------------------------------


def test_credentials_types_and_hosts(api: TestClient, clients: Clients) -> None:
    body = {"site_id": fd.SHOP, "metrics": ["visitors"], "date_range": "7d"}
    assert api.post("/api/v2/query", json=body).status_code == 401
    wrong = (clients.shop_read[0], "not-the-secret")
    assert query(api, body, wrong).status_code == 401
    refused = query(api, body, clients.shop_write)
    assert refused.status_code == 403 and "write client" in refused.json()["error"]
    assert query(api, body, clients.shop_root).status_code == 200
    bearer = {"Authorization": f"Bearer {clients.shop_read[0]}:{clients.shop_read[1]}"}
    assert api.post("/api/v2/query", json=body, headers=bearer).status_code == 200
    # tools on other machines reach it under any name, as they reach /track
    foreign = api.get("/export/events", headers={**_headers(clients.shop_read),
                                                 "host": "analytics.example.org"})
    assert foreign.status_code == 200
    assert api.get("/docs", headers={"host": "analytics.example.org"}).status_code == 403
    spec = api.get("/openapi.json").json()["paths"]
    assert {"/export/events", "/export/charts", "/api/v2/query"} <= set(spec)


def test_rate_limit_answers_429_with_retry_after(clients: Clients) -> None:
    with _app(read_api_rate_limit="2/minute") as limited:
        answers = [limited.get("/export/events?limit=1", headers=_headers(clients.limited))
                   for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["retry-after"]) >= 1


# --- Plausible Stats API v2 ----------------------------------------------------------------


def test_plausible_docs_example_shape(api: TestClient, clients: Clients) -> None:
    """The docs' first example (their visit:country_name is visit:country here)."""
    body = {"site_id": DOMAIN, "metrics": ["visitors", "pageviews", "bounce_rate"],
            "date_range": "7d", "filters": [["is_not", "visit:country", [""]]],
            "dimensions": ["visit:country"]}
    answer = query(api, body, clients.shop_read)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert set(data) == {"results", "meta", "query"}
    assert data["results"] and all(len(r["metrics"]) == 3 and len(r["dimensions"]) == 1
                                   for r in data["results"])
    visitors = [r["metrics"][0] for r in data["results"]]
    assert visitors == sorted(visitors, reverse=True)  # default order: first metric, desc
    assert data["query"]["site_id"] == DOMAIN and data["query"]["metrics"] == body["metrics"]
    assert data["query"]["date_range"][0].startswith(
        preset_range(Preset.LAST_7_DAYS, fd.PROJECT_ZONES[fd.SHOP]).start.isoformat())
    # the curl example of the docs: one metric, no dimensions, site by id works too
    simple = query(api, {"site_id": fd.SHOP, "metrics": ["visitors"], "date_range": "7d"},
                   clients.shop_read).json()
    assert len(simple["results"]) == 1 and simple["results"][0]["dimensions"] == []


@pytest.mark.parametrize("filters,plausible_filters", [
    ((), []),
    ((Filter("country", Op.IS, "DE"), Filter("path", Op.CONTAINS, "docs")),
     [["is", "visit:country", ["DE"]], ["contains", "event:page", ["docs"]]]),
])
def test_plausible_kpis_equal_the_overview(api: TestClient, clients: Clients,
                                           filters: tuple[Filter, ...],
                                           plausible_filters: list[Any]) -> None:
    st.cache_data.clear()
    current, _ = overview.kpis(fd.SHOP, RANGE, filters)
    custom = event_queries.event_counts(fd.SHOP, RANGE, filters)
    got = dict(zip(EVERY_METRIC, figures(api, clients, filters, plausible_filters)["results"][0][
        "metrics"], strict=True))
    assert current.visitors > 0
    assert got == {"visitors": current.visitors, "visits": current.sessions,
                   "pageviews": current.pageviews,
                   "views_per_visit": round(current.views_per_session, 2),
                   "bounce_rate": round(100 * current.bounce_rate),
                   "visit_duration": round(current.avg_session_duration_s),
                   "events": current.pageviews + int(custom["events"].sum())}


def test_plausible_one_field_filters_read_the_value_states_and_equal_the_overview(
        api: TestClient, clients: Clients) -> None:
    """Visitors and page views under a filter on one event field, in all and per day: the
    value states (the range is a month), the same figures as the overview's."""
    st.cache_data.clear()
    filters = (Filter("prop:plan", Op.IS, "pro"),)
    assert visitor_states(filters, RANGE.days) is not None
    current, _ = overview.kpis(fd.SHOP, RANGE, filters)
    series, _ = overview.timeseries(fd.SHOP, RANGE, Granularity.DAY, filters)
    plausible = [["is", "event:props:plan", ["pro"]]]
    total = figures(api, clients, filters, plausible, metrics=["visitors", "pageviews"])
    assert total["results"][0]["metrics"] == [current.visitors, current.pageviews]
    assert current.visitors > 0
    daily = figures(api, clients, filters, plausible, metrics=["visitors", "pageviews"],
                    dimensions=["time:day"])
    assert {r["dimensions"][0]: r["metrics"] for r in daily["results"]} == {
        f"{b:%Y-%m-%d}": [v, p] for b, v, p in zip(
            series.bucket, series.visitors, series.pageviews, strict=True) if v}


def test_plausible_breakdowns_equal_the_dashboards(api: TestClient, clients: Clients) -> None:
    st.cache_data.clear()
    for dimension, tile in (("visit:country", "country"), ("visit:source", "referrer_name"),
                            ("visit:device", "device"), ("visit:utm_source", "utm_source")):
        got = figures(api, clients, dimensions=[dimension])["results"]
        expected = overview.session_breakdown(fd.SHOP, RANGE, tile, limit=1000)
        assert {r["dimensions"][0]: (r["metrics"][0], r["metrics"][1],
                                     r["metrics"][4]) for r in got} == {
            row.value: (row.visitors, row.sessions, round(100 * row.bounce_rate))
            for row in expected.itertuples()}, dimension
    pages = query(api, {"site_id": DOMAIN, "metrics": ["visitors", "pageviews"],
                        "date_range": CUSTOM, "dimensions": ["event:page"]},
                  clients.shop_read).json()["results"]
    top = overview.top_pages(fd.SHOP, RANGE, limit=1000)
    assert {r["dimensions"][0]: r["metrics"] for r in pages} == {
        row.path: [row.visitors, row.pageviews] for row in top.itertuples()}
    filtered = (Filter("device", Op.IS, "mobile"),)
    days = query(api, {"site_id": DOMAIN, "metrics": ["visitors", "pageviews"],
                       "date_range": CUSTOM, "dimensions": ["time:day"],
                       "filters": [["is", "visit:device", ["mobile"]]]},
                 clients.shop_read).json()["results"]
    series, _ = overview.timeseries(fd.SHOP, RANGE, Granularity.DAY, filtered)
    expected_days = {row.bucket.date().isoformat(): [row.visitors, row.pageviews]
                     for row in series.itertuples() if row.visitors or row.pageviews}
    assert {r["dimensions"][0]: r["metrics"] for r in days} == expected_days
    assert [r["dimensions"][0] for r in days] == sorted(expected_days)


def test_plausible_refusals_name_the_problem(api: TestClient, clients: Clients) -> None:
    base = {"site_id": DOMAIN, "metrics": ["visitors"], "date_range": "7d"}
    cases = [
        ({"metrics": ["visitors", "scroll_depth"]}, 400, "scroll_depth"),
        ({"dimensions": ["visit:city_name"]}, 400, "visit:city_name"),
        ({"dimensions": ["event:page"], "metrics": ["bounce_rate"]}, 400, "bounce_rate"),
        ({"dimensions": ["visit:os"], "metrics": ["pageviews"],
          "filters": [["is", "event:name", ["signup"]]]}, 400, "pageviews"),
        ({"dimensions": ["event:name", "visit:os"]}, 400, "cannot be combined"),
        ({"date_range": "12mo"}, 400, "12mo"),
        ({"date_range": ["2024-02-30", "2024-03-01"]}, 400, "date"),
        ({"date_range": ["2024-03-01", "2024-02-01"]}, 400, "before"),
        ({"date_range": ["1900-01-01", "2024-02-01"]}, 400, "2000-01-01"),
        ({"filters": [["matches", "event:page", ["^/a"]]]}, 400, "matches"),
        ({"pagination": {"limit": 10**9}}, 400, "limit"),
        ({"site_id": fd.BLOG}, 403, "not this client's project"),
        ({"site_id": "nowhere.example"}, 403, "not this client's project"),
    ]
    for change, status, words in cases:
        answer = query(api, {**base, **change}, clients.shop_read)
        assert answer.status_code == status, (change, answer.text)
        assert words in answer.json()["error"], (change, answer.text)
    bad = api.post("/api/v2/query", content=b"{not json", headers=_headers(clients.shop_read))
    assert bad.status_code == 400


def test_plausible_filter_values_are_bound(api: TestClient, clients: Clients) -> None:
    for hostile in ("' OR 1=1 --", "DE') or ('1'='1", "\\'; drop table x; --"):
        answer = query(api, {"site_id": DOMAIN, "metrics": ["visitors", "visits"],
                             "date_range": CUSTOM,
                             "filters": [["is", "visit:country", [hostile]]]},
                       clients.shop_read)
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["metrics"] == [0, 0]


def test_plausible_never_reads_another_project(api: TestClient, clients: Clients) -> None:
    shop = figures(api, clients)["results"][0]["metrics"]
    blog = query(api, {"site_id": fd.BLOG, "metrics": EVERY_METRIC, "date_range": CUSTOM},
                 clients.blog_read).json()["results"][0]["metrics"]
    st.cache_data.clear()
    blog_kpis, _ = overview.kpis(fd.BLOG, RANGE)
    assert blog[0] == blog_kpis.visitors and blog != shop


# --- OpenPanel export ----------------------------------------------------------------------


def test_export_events_docs_example_and_paging(api: TestClient, clients: Clients) -> None:
    url = (f"/export/events?projectId={fd.SHOP}&event=signup&event=purchase&start={CUSTOM[0]}"
           f"&end={CUSTOM[1]}&page=1&limit=5&includes=profile,meta")
    first = api.get(url, headers=_headers(clients.shop_read))
    assert first.status_code == 200, first.text
    data = first.json()
    st.cache_data.clear()
    custom = event_queries.event_counts(fd.SHOP, RANGE)
    total = int(custom[custom["name"].isin(["signup", "purchase"])]["events"].sum())
    assert data["meta"] == {"count": 5, "totalCount": total, "pages": -(-total // 5),
                            "current": 1}
    second = api.get(url.replace("page=1", "page=2"), headers=_headers(clients.shop_read))
    rows = data["data"] + second.json()["data"]
    assert len({r["id"] for r in rows}) == 10
    assert [r["createdAt"] for r in rows] == sorted((r["createdAt"] for r in rows),
                                                    reverse=True)
    for row in rows:  # each event carries its properties (OpenPanel's issue #281)
        assert row["projectId"] == fd.SHOP and row["name"] in ("signup", "purchase")
        assert row["properties"]["plan"] in ("free", "pro")
        assert row["createdAt"].endswith("Z")
        if row["profileId"]:
            assert row["profile"]["id"] == row["profileId"]
        else:
            assert row["profile"] is None
    # a limit over OpenPanel's largest page is cut to it
    huge = api.get(f"/export/events?limit=99999999&start={CUSTOM[0]}",
                   headers=_headers(clients.shop_read)).json()
    assert huge["meta"]["count"] <= 1000 and huge["meta"]["pages"] >= 1


def test_export_events_refusals(api: TestClient, clients: Clients) -> None:
    headers = _headers(clients.shop_read)
    for url, status in (("/export/events?limit=abc", 400), ("/export/events?page=0", 400),
                        ("/export/events?start=2024-13-01", 400),
                        ("/export/events?start=2024-02-01&end=2024-01-01", 400),
                        ("/export/events?includes=secrets", 400),
                        (f"/export/events?projectId={fd.BLOG}", 403),
                        ("/export/events?projectId=does-not-exist", 403)):
        answer = api.get(url, headers=headers)
        assert answer.status_code == status, (url, answer.text)
    hostile = api.get("/export/events?event=' OR 1=1 --&profileId=x' or '1'='1",
                      headers=headers)
    assert hostile.status_code == 200 and hostile.json()["meta"]["totalCount"] == 0
    blog = api.get("/export/events?limit=1000", headers=_headers(clients.blog_read)).json()
    assert blog["data"] and {r["projectId"] for r in blog["data"]} == {fd.BLOG}


def test_export_charts_equal_the_events_page(api: TestClient, clients: Clients) -> None:
    series = '[{"name":"signup","segment":"event"},{"name":"screen_view","segment":"user"}]'
    answer = api.get("/export/charts", headers=_headers(clients.shop_read), params={
        "projectId": fd.SHOP, "series": series, "interval": "day", "startDate": CUSTOM[0],
        "endDate": CUSTOM[1], "previous": "true"})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    signup, views = data["series"]
    assert signup["names"] == ["signup"] and len(signup["data"]) == RANGE.days
    st.cache_data.clear()
    trend = event_queries.event_trend(fd.SHOP, RANGE, Granularity.DAY, ("signup",))
    assert signup["metrics"]["sum"] == int(trend["events"].sum()) > 0
    assert [p["count"] for p in signup["data"] if p["count"]] == list(trend["events"])
    assert "previous" in signup["metrics"] and "previous" in signup["data"][0]
    assert views["metrics"]["sum"] >= overview.kpis(fd.SHOP, RANGE)[0].visitors > 0
    assert data["metrics"]["sum"] == signup["metrics"]["sum"] + views["metrics"]["sum"]
    # a breakdown by country, OpenPanel's example
    by_country = api.get("/export/charts", headers=_headers(clients.shop_read), params={
        "projectId": fd.SHOP, "series": '[{"name":"signup"}]',
        "breakdowns": '[{"name":"country"}]', "range": "30d"}).json()
    assert {tuple(s["names"]) for s in by_country["series"]} <= {
        ("signup", c) for c in ("DE", "FR", "US")}
    assert sum(s["metrics"]["sum"] for s in by_country["series"]) == signup["metrics"]["sum"]
    for params in ({"series": '[{"name":"x","segment":"property_sum"}]'},
                   {"series": '[{"name":"x"}]', "interval": "minute"},
                   {"series": "not json"}, {},
                   {"series": '[{"name":"x"}]', "breakdowns": '[{"name":"password"}]'},
                   {"series": '[{"name":"x","filters":[{"name":"path","operator":"regex",'
                              '"value":["."]}]}]'}):
        refused = api.get("/export/charts", params=params, headers=_headers(clients.shop_read))
        assert refused.status_code == 400, (params, refused.text)


# --- only dbt relations ---------------------------------------------------------------------


def test_read_api_reads_only_dbt_models(api: TestClient, clients: Clients,
                                        dashboard_data: DashboardData) -> None:
    from warehouse.client import warehouse

    with recorded_queries() as recorded:
        headers = _headers(clients.shop_read)
        for dimensions in ([], ["time:day"], ["time:hour"], ["event:page"], ["event:name"],
                           ["visit:country", "time:day"]):
            if any(d.startswith("event:") for d in dimensions):
                metrics = ["visitors", "pageviews", "events"]
            elif any(d.startswith("visit:") for d in dimensions):  # (page filters below)
                metrics = ["visitors", "visits", "bounce_rate", "visit_duration"]
            else:
                metrics = EVERY_METRIC
            for filters in ([], [["contains", "event:page", ["docs"]]],
                            [["is", "visit:country", ["DE"]]]):
                answer = query(api, {"site_id": DOMAIN, "metrics": metrics, "date_range": CUSTOM,
                                     "dimensions": dimensions, "filters": filters},
                               clients.shop_read)
                assert answer.status_code == 200, answer.text
        assert api.get("/export/events?includes=profile", headers=headers).status_code == 200
        assert api.get("/export/charts", headers=headers, params={
            "series": '[{"name":"*","segment":"session"}]', "breakdowns": '[{"name":"os"}]',
            "previous": "true"}).status_code == 200
    assert len(recorded) > 20
    settings = get_settings()
    allowed = analytics_relations(dashboard_data)
    client = warehouse()
    try:
        named = set()
        for sql, parameters in recorded:
            named |= tables_named(client, sql, parameters)
        assert named and named <= allowed, named - allowed
        assert f"{settings.analytics_database}.profiles" in named
    finally:
        client.close()


# --- fuzzing: never a 5xx -------------------------------------------------------------------

JSON_VALUES = hs.recursive(
    hs.none() | hs.booleans() | hs.integers() | hs.floats(allow_nan=False, allow_infinity=False)
    | hs.text(max_size=12),
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=10)
WORDS = hs.sampled_from(["visitors", "visits", "events", "scroll_depth", "time:day",
                         "time:hour", "event:page", "event:name", "visit:country",
                         "visit:source", "visit:utm_term", "event:props:plan", "is", "is_not",
                         "contains", "matches", "7d", "day", "month", "2026-01-01",
                         "2026-02-30", "' or 1=1 --", "\x00", "asc", "desc", ""])
TEXT = WORDS | hs.text(max_size=20)
PLAUSIBLE = hs.fixed_dictionaries(
    {"site_id": hs.sampled_from([DOMAIN, fd.SHOP, fd.BLOG, "x"]) | JSON_VALUES},
    optional={"metrics": hs.lists(WORDS, max_size=3) | JSON_VALUES,
              "date_range": WORDS | hs.lists(TEXT, max_size=3) | JSON_VALUES,
              "dimensions": hs.lists(WORDS, max_size=3) | JSON_VALUES,
              "filters": hs.lists(hs.lists(WORDS | hs.lists(TEXT, max_size=2), max_size=4),
                                  max_size=3) | JSON_VALUES,
              "order_by": hs.lists(hs.lists(WORDS, max_size=2), max_size=2) | JSON_VALUES,
              "include": hs.dictionaries(WORDS, JSON_VALUES, max_size=2) | JSON_VALUES,
              "pagination": hs.dictionaries(hs.sampled_from(["limit", "offset", "x"]),
                                            JSON_VALUES, max_size=2) | JSON_VALUES})
EXPORT = hs.dictionaries(
    hs.sampled_from(["projectId", "event", "start", "end", "page", "limit", "includes",
                     "profileId", "series", "events", "breakdowns", "interval", "range",
                     "startDate", "endDate", "previous"]),
    TEXT | hs.sampled_from(['[{"name":"signup"}]', '[{"name":"*","segment":"user",'
                            '"filters":[{"name":"path","operator":"contains","value":["/"]}]}]',
                            '[{"name":"country"}]', '[{"name":"x","segment":[1]}]', "30d",
                            "hour", "true", "profile", "1000000000", "-1"])
    | JSON_VALUES.map(json.dumps), max_size=5)
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _refused_clearly(answer: Any) -> None:
    assert answer.status_code in (200, 400, 403), answer.text
    if answer.status_code != 200:
        assert answer.json()["error"]


def test_fuzz_read_api(api: TestClient, clients: Clients) -> None:
    headers = _headers(clients.shop_read)

    @FUZZ
    @given(body=PLAUSIBLE)
    def plausible_queries(body: dict[str, Any]) -> None:
        _refused_clearly(api.post("/api/v2/query", json=body, headers=headers))

    @FUZZ
    @given(params=EXPORT, path=hs.sampled_from(["/export/events", "/export/charts"]))
    def exports(params: dict[str, str], path: str) -> None:
        _refused_clearly(api.get(path, params=params, headers=headers))

    plausible_queries()
    exports()

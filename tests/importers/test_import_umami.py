"""``trackhouse import umami``: a real PostgreSQL holding Umami's tables, imported through a
real collector and worker into a raw database of this module's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from importers_support import Landing, checkpoint
from umami_data import UmamiData, umami_database

REFUSED_TIME = "outside the range of imported events"
REFUSED_KEY = "property names must be 1-200 characters"


@pytest.fixture(scope="module")
def umami() -> Iterator[UmamiData]:
    with umami_database(sessions=400) as data:
        yield data


def _args(umami: UmamiData, *extra: str) -> list[str]:
    return ["--database-url", umami.url, "--website-id", umami.website_id, *extra]


@pytest.fixture(scope="module")
def imported(landing: Landing, umami: UmamiData) -> tuple[str, dict]:
    """A project holding the whole Umami website, and the import's summary."""
    from accounts import service
    from accounts.db import session_scope

    project = f"imp-umami-{umami.website_id[:8]}"
    with session_scope() as session:
        service.create_project(session, name=project, domain="shop.example.com",
                               project_id=project, mirror=False)
    summary = landing.run("umami", project, *_args(umami, "--chunk-size", "700"))
    landing.wait_landed(project, umami.events - umami.bad_times - umami.bad_keys)
    return project, summary


def test_import_then_rerun_stores_each_event_once(landing: Landing, imported: tuple[str, dict],
                                                  umami: UmamiData) -> None:
    refused = umami.bad_times + umami.bad_keys
    good = umami.events - refused
    project, first = imported
    assert first["run"] == {"read": umami.events, "imported": good, "duplicates": 0,
                            "refused": refused}, first
    reasons = {r["reason"]: r["count"] for r in first["refusals"]}
    assert sum(n for reason, n in reasons.items() if REFUSED_TIME in reason) == umami.bad_times
    assert sum(n for reason, n in reasons.items() if REFUSED_KEY in reason) == umami.bad_keys
    assert all(r["example"] for r in first["refusals"])  # the Umami event id to look at
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)

    # a rerun reads past the checkpoint: nothing new
    again = landing.run("umami", project, *_args(umami))
    assert again["resumed"] is True and again["run"]["read"] == 0
    # read again from the start: every event is known to the collector
    restart = landing.run("umami", project, *_args(umami, "--restart"))
    assert restart["run"] == {"read": umami.events, "imported": 0, "duplicates": good,
                              "refused": refused}, restart
    assert landing.landed(project) == (good, good)


def test_kill_9_then_resume_loses_and_repeats_nothing(landing: Landing, project: str,
                                                      umami: UmamiData) -> None:
    refused = umami.bad_times + umami.bad_keys
    good = umami.events - refused
    landing.kill_midway("umami", project, *_args(umami, "--chunk-size", "100",
                                                 "--concurrency", "2", "--max-rate", "1500"))
    before = checkpoint(project)
    assert before is not None and 0 < before["read"] < umami.events
    resumed = landing.run("umami", project, *_args(umami, "--chunk-size", "1000"))
    assert resumed["resumed"] is True
    total = resumed["total"]
    # chunks acknowledged but not yet checkpointed when the import died come back as
    # duplicates; nothing is counted twice or lost
    assert total["read"] == umami.events and total["refused"] == refused
    assert total["imported"] + total["duplicates"] == good
    assert checkpoint(project)["finished"] is True  # type: ignore[index]
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)


def test_mapping_of_one_umami_event(landing: Landing, imported: tuple[str, dict],
                                    umami: UmamiData) -> None:
    """Columns from the session, the page and the event data, as docs/importers.md says."""
    import psycopg

    project = imported[0]

    with psycopg.connect(umami.url) as connection:
        event_id, session_id, path, plan, seats = connection.execute(
            "select e.event_id::text, e.session_id::text, e.url_path, p.string_value, "
            "s.number_value from website_event e "
            "join event_data p on p.website_event_id = e.event_id and p.data_key = 'plan' "
            "join event_data s on s.website_event_id = e.event_id and s.data_key = 'seats' "
            "limit 1").fetchone()
        browser, country, city, distinct = connection.execute(
            "select browser, country, city, distinct_id from session where session_id = %s",
            (session_id,)).fetchone()
    row = landing.client.query(
        f"select name, device_id, path, origin, browser, country, city, profile_id, "
        f"properties from {landing.settings.raw_database}.events where project_id = {{p:String}}"
        " and properties['umami.visit_id'] != '' and device_id = {d:String} and "
        "properties['plan'] = {plan:String} and path = {path:String} limit 1",
        parameters={"p": project, "d": session_id, "plan": plan, "path": path}).named_results()
    found = next(iter(row))
    assert found["name"] == "signup" and found["device_id"] == session_id
    assert found["origin"] == "https://shop.example.com" and found["browser"] == browser
    assert (found["country"], found["city"]) == (country or "", city or "")
    assert found["profile_id"] == (distinct or "")
    assert found["properties"]["seats"] == str(int(seats))
    assert event_id  # the source row exists


def test_the_overview_of_a_past_month_equals_sql_on_umami(
        landing: Landing, imported: tuple[str, dict], umami: UmamiData, tmp_path,
        monkeypatch) -> None:
    """After the import, the overview's visitors, page views and top pages of October 2026
    equal SQL on Umami's tables under docs/metrics.md: a visitor is a distinct device, and an
    Umami session is one device (Umami's "visitors" are its distinct sessions); a page view is
    an event of type 1; a page's path is url_path. Umami's "visits" (visit_id) are not
    Trackhouse sessions (those are recomputed with a 30-minute idle gap), so the overview's
    session figures are not compared."""
    from datetime import date

    import psycopg

    from trackhouse.dbt import run_dbt
    from trackhouse.settings import get_settings

    project = imported[0]
    raw = landing.settings.raw_database
    landing.client.command(
        f"insert into {raw}.projects (id, name, domain, timezone, created_at, updated_at) "
        "values ({p:String}, {p:String}, '', 'UTC', now64(3), now64(3))",
        parameters={"p": project})
    analytics = f"analytics_{raw}"
    settings = landing.settings.model_copy(update={"analytics_database": analytics})
    try:
        result = run_dbt(["run", "--select", "+daily_visitor_states_current",
                          "+daily_page_states_current", "--target-path", str(tmp_path),
                          "--log-path", str(tmp_path)], settings)
        assert result.success, result.exception or [
            (r.node.name, r.message) for r in (result.result or []) if r.status != "success"]
        monkeypatch.setenv("TRACKHOUSE_ANALYTICS_DATABASE", analytics)
        get_settings.cache_clear()
        from queries.overview import event_totals, top_pages
        from queries.periods import DateRange

        october = DateRange(date(2026, 10, 1), date(2026, 10, 31), "UTC")
        totals = event_totals(project, october)
        current = totals[totals["current"] == 1].iloc[0]
        pages = top_pages(project, october, limit=50)
    finally:
        for layer in ("", "_staging", "_intermediate"):
            landing.client.command(f"drop database if exists {analytics}{layer} sync")
        get_settings.cache_clear()

    month = ("website_id = %(w)s and created_at >= '2026-10-01T00:00:00Z' "
             "and created_at < '2026-11-01T00:00:00Z'")
    with psycopg.connect(umami.url) as connection:
        visitors, pageviews = connection.execute(
            f"select count(distinct session_id), count(*) filter (where event_type = 1) "
            f"from website_event where {month}", {"w": umami.website_id}).fetchone()
        expected_pages = connection.execute(
            f"select url_path, count(distinct session_id), count(*) from website_event "
            f"where {month} and event_type = 1 group by url_path "
            f"order by count(*) desc, url_path", {"w": umami.website_id}).fetchall()
    assert pageviews > 100 and visitors > 50  # the month holds real traffic
    assert (int(current["visitors"]), int(current["pageviews"])) == (visitors, pageviews)
    assert [(p, int(v), int(n)) for p, v, n in pages[["path", "visitors", "pageviews"]]
            .itertuples(index=False)] == expected_pages


def test_bad_input_gets_a_clear_error_and_stores_nothing(landing: Landing, project: str,
                                                         umami: UmamiData) -> None:
    from typer.testing import CliRunner

    from trackhouse.cli import app

    def run(*args: str) -> tuple[int, str]:
        done = CliRunner().invoke(app, landing.command("umami", *args)[1:])
        return done.exit_code, " ".join(done.output.split())

    code, output = run(project, "--database-url", umami.url, "--website-id", "1; drop table x")
    assert code == 1 and "--website-id must be Umami's website UUID" in output
    code, output = run("no-such-project", *_args(umami))
    assert code == 1 and "no project with id 'no-such-project'" in output
    code, output = run(project, *_args(umami, "--client-id", "nope", "--client-secret", "x"))
    assert code == 1 and "refused the chunk with 401" in output, output
    code, output = run(project, "--database-url", "postgresql://postgres@127.0.0.1:1/x",
                       "--website-id", umami.website_id)
    assert code == 1 and "cannot connect to the Umami database" in output
    assert (checkpoint(project) or {}).get("read", 0) == 0
    assert landing.landed(project) == (0, 0)


def test_a_rerun_imports_what_umami_gained_since(landing: Landing, project: str) -> None:
    """The checkpoint is a keyset position: events Umami recorded after the import are the
    next run's, and only they are read."""
    from datetime import UTC, datetime

    import psycopg

    with umami_database(sessions=5, seed=3) as small:
        first = landing.run("umami", project, *_args(small))
        assert first["run"]["read"] == small.events
        with psycopg.connect(small.url, autocommit=True) as connection:
            session_id = connection.execute("select session_id from session limit 1"
                                            ).fetchone()[0]
            for day in (1, 2):
                connection.execute(
                    "insert into website_event (event_id, website_id, session_id, visit_id, "
                    "created_at, url_path, event_type, hostname) values (gen_random_uuid(), "
                    "%s, %s, gen_random_uuid(), %s, '/new', 1, 'shop.example.com')",
                    (small.website_id, session_id, datetime(2026, 12, day, tzinfo=UTC)))
        later = landing.run("umami", project, *_args(small))
    assert later["resumed"] is True
    assert later["run"] == {"read": 2, "imported": 2, "duplicates": 0, "refused": 0}, later
    assert later["total"]["read"] == small.events + 2

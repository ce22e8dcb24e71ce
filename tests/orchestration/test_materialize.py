"""Materializing every dbt asset against the test warehouse, and what the run records."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from dagster import DagsterEventType
from orchestration_support import PROJECT_ID

MART_CONTRACT = {"sessions", "daily_metrics", "funnel_steps", "retention", "profiles"}


def test_every_dbt_asset_materializes_and_the_marts_exist(built_marts: Any, ch: Any) -> None:
    from orchestration.assets import dbt_models
    from trackhouse.settings import get_settings

    assert built_marts.success
    materialized = {event.asset_key for event in built_marts.get_asset_materialization_events()}
    assert materialized == set(dbt_models.keys)

    analytics = get_settings().analytics_database
    tables = set(ch.query(
        "select name from system.tables where database = {db:String}", parameters={"db": analytics}
    ).result_columns[0])
    assert MART_CONTRACT <= tables

    # the marts hold the test project's events: two days with visitors, sessions, page views
    days = ch.query(
        f"select day, visitors, sessions, pageviews from `{analytics}`.daily_metrics "
        "where project_id = {project:String} order by day",
        parameters={"project": PROJECT_ID},
    ).result_rows
    assert len(days) == 2
    assert sum(row[3] for row in days) == 5  # five screen_view events
    assert {row[1] for row in days} == {2}  # two visitors each day (a+b, then a+c)


def test_dbt_tests_ran_as_passing_asset_checks(built_marts: Any) -> None:
    evaluations = built_marts.get_asset_check_evaluations()
    dbt_checks = [e for e in evaluations if e.check_name not in
                  ("collector_buffer_backlog", "dead_letter_store_empty")]
    assert dbt_checks, "no dbt test was reported as an asset check"
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in dbt_checks if not e.passed]
    assert not failed


def test_the_build_runs_data_tests_and_leaves_unit_tests_to_ci(built_marts: Any) -> None:
    """The scheduled builds skip dbt's unit tests (fixed inputs: the suite runs them) and keep
    the data tests of what they build (docs/decisions/0047)."""
    from trackhouse.dbt import DBT_PROJECT_DIR

    folders = list((DBT_PROJECT_DIR / "target").glob(f"dbt_models-{built_marts.run_id[:7]}-*"))
    assert len(folders) == 1, folders
    results = json.loads((folders[0] / "run_results.json").read_text())["results"]
    kinds = Counter(result["unique_id"].split(".")[0] for result in results)
    assert kinds["model"] > 0 and kinds["test"] > 0
    assert kinds["unit_test"] == 0


def test_raw_tables_observed_with_row_count_and_newest_event_time(
    built_marts: Any, raw_events: list[dict[str, Any]], ch: Any
) -> None:
    from orchestration.assets import RAW_EVENTS_KEY
    from trackhouse.settings import get_settings

    observations = {
        event.asset_key: event.event_specific_data.asset_observation.metadata
        for event in built_marts.all_events
        if event.event_type == DagsterEventType.ASSET_OBSERVATION
    }
    assert {key.path[-1] for key in observations} >= {"events", "profiles", "projects"}
    events = observations[RAW_EVENTS_KEY]
    raw = get_settings().raw_database
    # what the table held when it was observed: at least these events, at most what is there now
    stored, newest = ch.query(f"select count(), max(created_at) from `{raw}`.events").first_row
    assert len(raw_events) <= events["row_count"].value <= stored
    latest_test_event = max(event["created_at"] for event in raw_events).timestamp()
    assert latest_test_event <= events["newest_event_time"].value <= newest.timestamp()


def test_collector_checks_pass_on_an_empty_buffer(built_marts: Any) -> None:
    by_name = {e.check_name: e for e in built_marts.get_asset_check_evaluations()}
    assert by_name["collector_buffer_backlog"].passed
    assert by_name["collector_buffer_backlog"].metadata["backlog_rows"].value == 0
    assert by_name["dead_letter_store_empty"].passed


def test_collector_checks_fail_on_backlog_and_dead_letters(
    redis_server: Any, monkeypatch: Any
) -> None:
    """The checks' thresholds; that they count the rows the collector really wrote is
    tests/collector/test_buffer_layout.py's."""
    import redis

    from orchestration.checks import collector_buffer_backlog, dead_letter_store_empty
    from orchestration.resources import RedisResource
    from trackhouse.buffer_layout import LANES, Keys
    from trackhouse.settings import get_settings

    client = redis.Redis.from_url(redis_server.url)
    monkeypatch.setenv("TRACKHOUSE_BUFFER_BACKLOG_ALERT_ROWS", "10")
    get_settings.cache_clear()
    resource = RedisResource(url=redis_server.url)
    touched = [Keys.buffered_rows("events"), Keys.buffered_rows("imports"), Keys.inflight,
               *map(Keys.dead_letter, LANES)]
    saved = {key: client.dump(key) for key in touched}
    client.delete(*touched)
    try:
        client.set(Keys.buffered_rows("events"), 8)
        client.set(Keys.inflight, 2)
        assert collector_buffer_backlog(redis=resource).passed  # 10 rows: at the limit
        client.set(Keys.buffered_rows("imports"), 1)
        backlog = collector_buffer_backlog(redis=resource)
        assert not backlog.passed and backlog.metadata["backlog_rows"].value == 11

        assert dead_letter_store_empty(redis=resource).passed
        client.rpush(Keys.dead_letter("profiles"), b'{"reason": "test"}')
        dead = dead_letter_store_empty(redis=resource)
        assert not dead.passed and dead.severity.value == "ERROR"

        unreachable = collector_buffer_backlog(redis=RedisResource(url="redis://127.0.0.1:1/0"))
        assert not unreachable.passed and "unreachable" in (unreachable.description or "")
    finally:
        client.delete(*touched)
        for key, value in saved.items():
            if value is not None:
                client.restore(key, 0, value)
        monkeypatch.undo()
        get_settings.cache_clear()


def test_freshness_checks_cover_every_mart(manifest_ready: None) -> None:
    from orchestration.assets import dbt_translator
    from orchestration.checks import freshness_checks, mart_models
    from orchestration.project import dbt_manifest

    checked = {key.asset_key for checks in freshness_checks for key in checks.check_keys}
    marts = {dbt_translator.get_asset_key(node) for node in mart_models(dbt_manifest())}
    assert marts and checked == marts

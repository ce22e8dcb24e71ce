"""Fixtures of the orchestration tests: the dbt manifest, raw test events, Dagster resources.

The orchestration modules are imported inside fixtures and tests, never at collection time:
they read the settings (warehouse URL, intervals) that the session fixtures set first.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from orchestration_support import PROJECT_ID, sample_events


@pytest.fixture(scope="session")
def manifest_ready(trackhouse_env: None) -> None:
    """``dbt parse`` once per session (what ``trackhouse dagster`` does at start-up)."""
    from orchestration.project import prepare_manifest

    prepare_manifest()


@pytest.fixture(scope="session")
def raw_events(migrated: None) -> list[dict[str, Any]]:
    """Test events of PROJECT_ID inserted once into the raw events table (plus the project)."""
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    settings = get_settings()
    now = datetime.now(UTC).replace(microsecond=0)
    rows = sample_events(now)
    client = warehouse()
    try:
        columns = list(rows[0])
        client.insert(f"{settings.raw_database}.events", [list(r.values()) for r in rows],
                      column_names=columns)
        client.insert(
            f"{settings.raw_database}.projects",
            [[PROJECT_ID, "Orchestration test", "example.test", "UTC", now, now, 0]],
            column_names=["id", "name", "domain", "timezone", "created_at", "updated_at",
                          "is_deleted"],
        )
    finally:
        client.close()
    return rows


@pytest.fixture(scope="session")
def empty_collector_buffer(redis_server: Any) -> Any:
    """The session's Redis with the collector's keys emptied once, before the first orchestration
    test: the collector tests leave buffered rows and dead letters there on purpose, and the
    collector checks would (rightly) fail on them."""
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server


@pytest.fixture
def dagster_resources(empty_collector_buffer: Any, manifest_ready: None) -> dict[str, Any]:
    from orchestration.resources import RedisResource, build_resources

    return {**build_resources(), "redis": RedisResource(url=empty_collector_buffer.url)}


@pytest.fixture(scope="session")
def built_marts(empty_collector_buffer: Any, raw_events: list[dict[str, Any]],
                manifest_ready: None) -> Iterator[Any]:
    """Every dbt asset materialized once (with the raw observations and collector checks)."""
    from dagster import AssetSelection, materialize

    from orchestration.assets import dbt_models, raw_tables
    from orchestration.checks import collector_checks
    from orchestration.resources import RedisResource, build_resources

    result = materialize(
        [raw_tables, dbt_models, *collector_checks],
        resources={**build_resources(), "redis": RedisResource(url=empty_collector_buffer.url)},
        # the sources too: the raw tables are observed before dbt runs
        selection=AssetSelection.all(include_sources=True),
        raise_on_error=False,
    )
    yield result

"""Fixtures of the orchestration tests: the dbt manifest, raw test events, Dagster resources.

The orchestration modules are imported inside fixtures and tests, never at collection time:
they read the settings (warehouse URL, intervals) that the session fixtures set first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

PROJECT_ID = "orchestration-test"


@pytest.fixture(scope="session")
def manifest_ready(trackhouse_env: None) -> None:
    """``dbt parse`` once per session (what ``trackhouse dagster`` does at start-up)."""
    from orchestration.project import prepare_manifest

    prepare_manifest()


def _event(device: str, name: str, at: datetime, path: str = "/") -> dict[str, Any]:
    return {
        "id": uuid.uuid4(), "project_id": PROJECT_ID, "name": name, "device_id": device,
        "profile_id": "", "session_id": "", "created_at": at, "received_at": at,
        "path": path, "origin": "https://example.test", "country": "DE", "browser": "Firefox",
        "os": "Linux", "device": "desktop",
    }


def sample_events(now: datetime) -> list[dict[str, Any]]:
    """Three visitors over two days: page views, a signup funnel, a returning visitor."""
    yesterday = now - timedelta(days=1)
    rows = [
        _event("device-a", "screen_view", yesterday, "/"),
        _event("device-a", "screen_view", yesterday + timedelta(minutes=1), "/pricing"),
        _event("device-a", "signup", yesterday + timedelta(minutes=2)),
        _event("device-a", "screen_view", now - timedelta(minutes=20), "/app"),
        _event("device-b", "screen_view", yesterday + timedelta(hours=2), "/"),
        _event("device-c", "screen_view", now - timedelta(minutes=10), "/blog"),
        _event("device-c", "signup", now - timedelta(minutes=9)),
    ]
    return rows


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


@pytest.fixture
def dagster_resources(redis_server: Any, manifest_ready: None) -> dict[str, Any]:
    from orchestration.resources import RedisResource, build_resources

    return {**build_resources(), "redis": RedisResource(url=redis_server.url)}


@pytest.fixture(scope="session")
def built_marts(redis_server: Any, raw_events: list[dict[str, Any]],
                manifest_ready: None) -> Iterator[Any]:
    """Every dbt asset materialized once (with the raw observations and collector checks)."""
    from dagster import materialize

    from orchestration.assets import dbt_models, raw_tables
    from orchestration.checks import collector_checks
    from orchestration.resources import RedisResource, build_resources

    result = materialize(
        [raw_tables, dbt_models, *collector_checks],
        resources={**build_resources(), "redis": RedisResource(url=redis_server.url)},
        raise_on_error=False,
    )
    yield result

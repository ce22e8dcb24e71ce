"""Test data of the orchestration tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

# one project per test session: a real ClickHouse (TRACKHOUSE_CLICKHOUSE_URL) keeps earlier
# sessions' events
PROJECT_ID = f"orchestration-test-{uuid.uuid4().hex[:8]}"


def _event(device: str, name: str, at: datetime, path: str = "/") -> dict[str, Any]:
    return {
        "id": uuid.uuid4(), "project_id": PROJECT_ID, "name": name, "device_id": device,
        # received now (as the collector stamps it), happened at `at` (at most 7 days earlier)
        "profile_id": "", "session_id": "", "created_at": at,
        "received_at": datetime.now(UTC).replace(microsecond=0),
        "path": path, "origin": "https://example.test", "country": "DE", "browser": "Firefox",
        "os": "Linux", "device": "desktop",
    }


def sample_events(now: datetime, device: str = "") -> list[dict[str, Any]]:
    """Three visitors over two days: page views, a signup funnel, a returning visitor (or, with
    ``device``, that one device's page view now)."""
    if device:  # in a project of its own, so the test project's figures stay as they are
        return [{**_event(device, "screen_view", now, "/daemon"),
                 "project_id": f"{PROJECT_ID}-daemon"}]
    # yesterday's visits at noon: "now minus a day plus two hours" ran into today whenever the
    # suite ran after 22:00 UTC, and the marts' per-day figures came out {1, 3} instead of {2}
    yesterday = datetime.combine(now.date() - timedelta(days=1), time(12), tzinfo=UTC)
    # today's visits in the last 20 minutes, but never before midnight: just after 00:00 UTC,
    # "20 minutes ago" is yesterday, and the marts saw one day instead of two
    earliest = max(now - timedelta(minutes=20), datetime.combine(now.date(), time(0), tzinfo=UTC))
    step = (now - earliest) / 20  # a minute, or less just after midnight
    rows = [
        _event("device-a", "screen_view", yesterday, "/"),
        _event("device-a", "screen_view", yesterday + timedelta(minutes=1), "/pricing"),
        _event("device-a", "signup", yesterday + timedelta(minutes=2)),
        _event("device-a", "screen_view", earliest, "/app"),
        _event("device-b", "screen_view", yesterday + timedelta(hours=2), "/"),
        _event("device-c", "screen_view", earliest + 10 * step, "/blog"),
        _event("device-c", "signup", earliest + 11 * step),
    ]
    return rows


def build_staging_with(monkeypatch: Any, env: dict[str, str], **config: Any) -> Any:
    """A real in-process Dagster run of the dbt assets' ``stg_events`` under settings changed
    by ``env`` (restored afterwards), with ``config`` for the dbt op."""
    from dagster import materialize

    from orchestration.assets import dbt_models
    from orchestration.resources import dbt_resource
    from trackhouse.settings import get_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return materialize(
            [dbt_models], resources={"dbt": dbt_resource()},
            selection=[key for key in dbt_models.keys if key.path[-1] == "stg_events"],
            raise_on_error=False, run_config={"ops": {"dbt_models": {"config": config}}},
        )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

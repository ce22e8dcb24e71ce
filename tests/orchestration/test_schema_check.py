"""A scheduled build never runs dbt on raw tables older than the code: the run fails and says
which command brings them up."""

from __future__ import annotations

import uuid

import pytest
from dagster import DagsterEventType, materialize


def test_a_build_on_unmigrated_raw_tables_fails_naming_the_command(
    manifest_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.assets import dbt_models
    from orchestration.resources import dbt_resource
    from trackhouse.settings import get_settings

    monkeypatch.setenv("TRACKHOUSE_RAW_DATABASE", f"unmigrated_{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    try:
        result = materialize(
            [dbt_models], resources={"dbt": dbt_resource()},
            selection=[key for key in dbt_models.keys if key.path[-1] == "stg_events"],
            raise_on_error=False,
        )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert "lack migration(s) 0001_" in message and "run `trackhouse migrate`" in message
    # refused before dbt ran: no materialization, no retry
    assert not result.get_asset_materialization_events()
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]

"""A scheduled build never runs dbt on raw tables older than the code: the run fails and says
which command brings them up."""

from __future__ import annotations

import uuid

import pytest
from dagster import DagsterEventType
from orchestration_support import build_staging_with


def test_a_build_on_unmigrated_raw_tables_fails_naming_the_command(
    manifest_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = f"unmigrated_{uuid.uuid4().hex[:8]}"
    result = build_staging_with(monkeypatch, {"TRACKHOUSE_RAW_DATABASE": database})
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert "lack migration(s) 0001_" in message and "run `trackhouse migrate`" in message
    # refused before dbt ran: no materialization, no retry
    assert not result.get_asset_materialization_events()
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]

"""Retention: a project's raw events older than its period disappear, the marts stay.

The model tests' scenario, with its Berlin project renamed to a project of this module, is
built with dbt. The project gets a retention period in the metadata database; the Dagster
retention job (run in process, as the daemon runs it) deletes its older raw and staging rows
and nothing else, and the marts, built again incrementally, are unchanged.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lifecycle_support import snapshot
from models_scenario import APP, DAYS, SHOP, START, ZONES, build

from trackhouse.settings import get_settings

PROJECT = f"keep-{uuid.uuid4().hex[:12]}"
KEEP_DAYS = 7  # the cutoff (Oct 27) leaves the late events of the last load in kept days


def count(client: Any, table: str, project: str, before: datetime | None = None) -> int:
    where = "project_id = {p:String}"
    if before is not None:
        where += " and created_at < toDateTime64({t:String}, 3, 'UTC')"
    [(rows,)] = client.query(
        f"select count() from {table} where {where}",
        parameters={"p": project, "t": before.strftime("%Y-%m-%d %H:%M:%S") if before else ""},
    ).result_rows
    return int(rows)


@pytest.fixture(scope="module")
def expired(models_warehouse, tmp_path_factory) -> dict[str, Any]:
    from accounts.db import session_scope, upgrade
    from accounts.service import create_project, update_project

    models = models_warehouse
    scenario = build()
    for row in scenario.events + scenario.profile_calls:
        if row["project_id"] == SHOP:
            row["project_id"] = PROJECT
    models.insert_projects({PROJECT: ZONES[SHOP], APP: ZONES[APP]})
    models.insert_events(scenario.events)
    models.insert_profile_calls(scenario.profile_calls)
    models.dbt("seed")
    models.dbt("run")
    client, settings = models.client, models.settings

    upgrade()
    with session_scope() as session:
        create_project(session, name="Keep", project_id=PROJECT, mirror=False)
    with session_scope() as session:
        # a change of the period is a metadata update: nothing restarts, the next run reads it
        update_project(session, PROJECT, mirror=False, retention_days=KEEP_DAYS)

    raw, staging = f"{models.raw}.events", f"{models.analytics}_staging.stg_events"
    recorded: dict[str, Any] = {
        "marts": snapshot(client, settings),
        "app_raw": count(client, raw, APP), "raw": count(client, raw, PROJECT),
        "staging": count(client, staging, PROJECT),
    }
    # the run happens "now": the scenario ends DAYS after START
    now = START + timedelta(days=DAYS)
    cutoff = now - timedelta(days=KEEP_DAYS)
    recorded["old_raw"] = count(client, raw, PROJECT, cutoff)
    recorded["old_staging"] = count(client, staging, PROJECT, cutoff)

    from orchestration.project import prepare_manifest

    prepare_manifest()  # as `trackhouse dagster` does before loading the definitions
    mp = pytest.MonkeyPatch()
    mp.setenv("TRACKHOUSE_RAW_DATABASE", models.raw)
    mp.setenv("TRACKHOUSE_ANALYTICS_DATABASE", models.analytics)
    get_settings.cache_clear()
    try:
        from lifecycle import retention
        from orchestration.lifecycle import retention_job

        mp.setattr(retention, "datetime", _Frozen.at(now))
        result = retention_job.execute_in_process()
    finally:
        mp.undo()
        get_settings.cache_clear()
    recorded["success"] = result.success
    recorded["after_raw"] = count(client, raw, PROJECT)
    recorded["after_old_raw"] = count(client, raw, PROJECT, cutoff)
    recorded["after_old_staging"] = count(client, staging, PROJECT, cutoff)
    recorded["after_staging"] = count(client, staging, PROJECT)
    recorded["after_app_raw"] = count(client, raw, APP)
    models.dbt("run")
    recorded["marts_after"] = snapshot(client, settings)
    with session_scope() as session:
        update_project(session, PROJECT, mirror=False, retention_days=0)
    return recorded


class _Frozen(datetime):
    """``datetime`` whose ``now`` is fixed (the retention module's clock)."""

    moment: datetime = datetime(2000, 1, 1, tzinfo=UTC)

    @classmethod
    def at(cls, moment: datetime) -> type[_Frozen]:
        return type("Frozen", (cls,), {"moment": moment})

    @classmethod
    def now(cls, tz: Any = None) -> _Frozen:  # type: ignore[override]
        return cls.moment  # type: ignore[return-value]


def test_old_events_disappear_and_recent_ones_stay(expired: dict[str, Any]) -> None:
    assert expired["success"]
    assert expired["old_raw"] > 0 and expired["old_staging"] > 0
    assert expired["after_old_raw"] == 0 and expired["after_old_staging"] == 0
    assert expired["after_raw"] == expired["raw"] - expired["old_raw"] > 0
    assert expired["after_staging"] == expired["staging"] - expired["old_staging"] > 0


def test_other_projects_are_untouched(expired: dict[str, Any]) -> None:
    assert expired["after_app_raw"] == expired["app_raw"] > 0


def test_marts_keep_their_aggregates(expired: dict[str, Any]) -> None:
    assert expired["marts_after"] == expired["marts"]


def test_retention_days_are_validated(expired: dict[str, Any]) -> None:
    from accounts.db import session_scope
    from accounts.errors import InvalidInput
    from accounts.service import update_project

    with session_scope() as session, pytest.raises(InvalidInput, match="retention days"):
        update_project(session, PROJECT, mirror=False, retention_days=-3)

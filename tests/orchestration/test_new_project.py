"""A project created after the marts were built is in every mart after the next scheduled runs,
even while another project's events carry a time in 2120 (imported by an older collector)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestration_support import PROJECT_ID, sample_events

NEW_PROJECT = f"{PROJECT_ID}-created-later"
ODD_PROJECT = f"{PROJECT_ID}-year-2120"


def test_a_project_created_after_a_build_reaches_every_mart(
    built_marts: Any, dagster_resources: dict[str, Any], ch: Any
) -> None:
    from dagster import DagsterInstance

    from orchestration.checks import collector_checks, mart_models
    from orchestration.definitions import defs
    from orchestration.project import dbt_manifest
    from trackhouse.settings import get_settings

    assert built_marts.success  # the first build, before the project existed
    settings = get_settings()
    now = datetime.now(UTC).replace(microsecond=0)
    ch.insert(
        f"{settings.raw_database}.projects",
        [[NEW_PROJECT, "Created later", "later.test", "Asia/Tokyo", now, now, 0],
         [ODD_PROJECT, "Year 2120", "odd.test", "UTC", now, now, 0]],
        column_names=["id", "name", "domain", "timezone", "created_at", "updated_at",
                      "is_deleted"],
    )
    events = [{**row, "project_id": NEW_PROJECT, "profile_id": "later-user"}
              for row in sample_events(now)]
    events.append({**sample_events(now)[0], "project_id": ODD_PROJECT,
                   "created_at": datetime(2120, 5, 1, tzinfo=UTC)})
    ch.insert(f"{settings.raw_database}.events", [list(row.values()) for row in events],
              column_names=list(events[0]))

    collector = {key.name for check in collector_checks for key in check.check_keys}
    checked: dict[str, set[str]] = {}
    with DagsterInstance.ephemeral() as instance:
        for job_name in ("incremental_marts", "funnels_and_retention"):
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance, resources=dagster_resources, raise_on_error=False,
                tags={"trackhouse/trigger": f"{job_name}_schedule"},
            )
            assert result.success, job_name
            evaluations = [e for e in result.get_asset_check_evaluations()
                           if e.check_name not in collector]
            assert all(e.passed for e in evaluations), job_name
            checked[job_name] = {e.asset_key.path[-1] for e in evaluations}
    # the 5-minute job builds; the hourly one tests every model, those it does not build too
    assert checked["incremental_marts"] == set()
    assert {"stg_events", "sessions", "daily_metrics", "funnel_steps"} <= checked[
        "funnels_and_retention"]

    # every mart with a project_id; funnel_steps holds only the projects the seed defines
    # funnels for (none for the new one)
    marts = {node["name"] for node in mart_models(dbt_manifest())} - {"funnel_steps"}
    per_project = set(ch.query(
        "select table from system.columns where database = {db:String} and name = 'project_id'",
        parameters={"db": settings.analytics_database},
    ).result_columns[0]) & marts
    assert {"sessions", "daily_metrics", "retention", "profiles"} <= per_project
    missing = [mart for mart in sorted(per_project) if not ch.query(
        f"select count() from `{settings.analytics_database}`.`{mart}` "
        "where project_id = {project:String}", parameters={"project": NEW_PROJECT},
    ).first_row[0]]
    assert missing == []

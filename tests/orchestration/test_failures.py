"""Failures as a person sees them in Dagster: a failing dbt test is a failed asset check that
holds nothing back; a warehouse outage is retried with backoff, a real failure is not."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterEventType, materialize
from orchestration_support import build_staging_with
from support import free_port

FAILING_TEST = "orchestration_sessions_are_empty"


def test_a_failing_dbt_test_is_a_failed_check_and_the_marts_after_it_still_build(
    tmp_path: Path, built_marts: Any, manifest_ready: None
) -> None:
    """A copy of the dbt project with one extra singular test that fails whenever `sessions`
    has rows (it has: the test events), as a test fails on one project's odd data. The check
    fails (severity WARN) and every mart built from `sessions` is built all the same."""
    from dagster_dbt import DbtProject

    from orchestration.assets import build_dbt_models
    from orchestration.project import DBT_PROJECT_DIR, apply_dbt_env
    from orchestration.resources import dbt_resource

    copy = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    (copy / "tests").mkdir(exist_ok=True)
    (copy / "tests" / f"{FAILING_TEST}.sql").write_text(
        "-- fails whenever sessions has a row\nselect * from {{ ref('sessions') }}\n"
    )
    project = DbtProject(project_dir=copy, profiles_dir=copy)
    apply_dbt_env()
    project.preparer.prepare(project)
    models = build_dbt_models(project)
    downstream = [AssetKey(name) for name in
                  ("daily_metrics", "hourly_metrics", "daily_session_states", "build_info")]

    result = materialize(
        [models], resources={"dbt": dbt_resource(project)},
        selection=[AssetKey("sessions"), *downstream], raise_on_error=False,
    )
    assert result.success  # dbt build warns: nothing is skipped, the run goes on
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[FAILING_TEST].passed
    assert checks[FAILING_TEST].severity == AssetCheckSeverity.WARN
    assert checks[FAILING_TEST].asset_key == AssetKey("sessions")
    assert all(e.passed for name, e in checks.items() if name != FAILING_TEST)
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {AssetKey("sessions"), *downstream}
    # and Dagster does not treat the check as one that holds back what depends on the asset
    [spec] = [s for s in models.check_specs if s.name == FAILING_TEST]
    assert not spec.blocking


def test_an_unreachable_warehouse_is_retried_with_backoff(
    manifest_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = build_staging_with(
        monkeypatch, {"TRACKHOUSE_CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}"},
        transient_retries=2, retry_base_delay_s=0.2)
    assert not result.success
    retries = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    waits = [e.event_specific_data.seconds_to_wait for e in retries]
    assert waits == [0.2, 0.4]  # two retries, exponential backoff, then the failure stands


def test_old_dbt_invocation_folders_are_pruned(tmp_path: Path) -> None:
    import os

    from orchestration.assets import prune_invocation_dirs

    for age in range(5):
        folder = tmp_path / f"dbt_models-run{age}"
        folder.mkdir()
        (folder / "dbt.log").write_text("log")
        os.utime(folder, (1_000_000 - age, 1_000_000 - age))
    (tmp_path / "manifest.json").write_text("{}")
    prune_invocation_dirs(tmp_path, "dbt_models", keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dbt_models-run0", "dbt_models-run1", "manifest.json"]

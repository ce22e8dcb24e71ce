"""Schedules and the first-build sensor give the right run requests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from dagster import (
    AssetMaterialization,
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from trackhouse.settings import get_settings


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


def add_run(instance: DagsterInstance, job_name: str, status: DagsterRunStatus) -> None:
    """A run record of ``job_name`` in the given state, as the run queue would hold it."""
    code_location = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(module_name="orchestration.definitions")
    )
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=code_location, repository_name="__repository__"
        ),
        job_name=job_name,
    )
    create_run_for_test(instance, job_name=job_name, status=status, remote_job_origin=origin)


def test_cron_every() -> None:
    from orchestration.schedules import cron_every

    assert cron_every(1) == "* * * * *"
    assert cron_every(5) == "*/5 * * * *"
    assert cron_every(60) == "0 * * * *"
    assert cron_every(360) == "0 */6 * * *"
    for uneven in (7, 90, 1000):
        with pytest.raises(ValueError, match="does not divide"):
            cron_every(uneven)


def test_cadences_come_from_the_settings(
    manifest_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.schedules import build_schedules

    by_name = {s.name: s for s in build_schedules()}
    assert by_name["incremental_marts_schedule"].cron_schedule == "*/5 * * * *"
    assert by_name["funnels_and_retention_schedule"].cron_schedule == "0 * * * *"
    assert by_name["full_refresh_schedule"].cron_schedule == "30 3 * * 0"

    monkeypatch.setenv("TRACKHOUSE_MARTS_INTERVAL_MINUTES", "1")
    monkeypatch.setenv("TRACKHOUSE_FUNNELS_INTERVAL_MINUTES", "15")
    monkeypatch.setenv("TRACKHOUSE_FULL_REFRESH_CRON", "0 4 * * *")
    get_settings.cache_clear()
    try:
        by_name = {s.name: s for s in build_schedules()}
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert by_name["incremental_marts_schedule"].cron_schedule == "* * * * *"
    assert by_name["funnels_and_retention_schedule"].cron_schedule == "*/15 * * * *"
    assert by_name["full_refresh_schedule"].cron_schedule == "0 4 * * *"
    assert all(s.default_status.value == "RUNNING" for s in by_name.values())


def test_each_schedule_requests_its_job(manifest_ready: None, instance: DagsterInstance) -> None:
    from orchestration.definitions import defs
    from orchestration.schedules import schedules

    tick = datetime(2026, 11, 29, 3, 30, tzinfo=UTC)
    expected_jobs = {
        "incremental_marts_schedule": "incremental_marts",
        "funnels_and_retention_schedule": "funnels_and_retention",
        "full_refresh_schedule": "full_refresh",
    }
    for schedule in schedules:
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick)
        result = schedule.evaluate_tick(context)
        assert result.skip_message is None
        [request] = result.run_requests
        assert schedule.job_name == expected_jobs[schedule.name]
        assert request.tags["trackhouse/trigger"] == schedule.name
        # the job carries the tag dagster.yaml limits to one run in progress
        assert defs.resolve_job_def(schedule.job_name).tags["trackhouse/dbt"] == "build"

    # only the full refresh passes --full-refresh to dbt
    for job_name, full_refresh in (("full_refresh", True), ("incremental_marts", False),
                                   ("funnels_and_retention", False)):
        run_config = defs.resolve_job_def(job_name).run_config or {}
        op_config = run_config.get("ops", {}).get("dbt_models", {}).get("config", {})
        assert op_config.get("full_refresh", False) is full_refresh


def test_a_tick_is_skipped_while_its_job_waits_in_the_queue(
    manifest_ready: None, instance: DagsterInstance
) -> None:
    from orchestration.schedules import schedules

    [marts] = [s for s in schedules if s.name == "incremental_marts_schedule"]
    add_run(instance, "incremental_marts", DagsterRunStatus.QUEUED)
    result = marts.evaluate_tick(build_schedule_context(instance=instance))
    assert not result.run_requests
    assert "already QUEUED" in (result.skip_message or "")
    # another job in the queue does not hold this one back
    [funnels] = [s for s in schedules if s.name == "funnels_and_retention_schedule"]
    assert funnels.evaluate_tick(build_schedule_context(instance=instance)).run_requests


def test_first_build_sensor_builds_only_what_was_never_built(
    manifest_ready: None, instance: DagsterInstance
) -> None:
    from orchestration.checks import mart_keys
    from orchestration.project import dbt_manifest
    from orchestration.schedules import first_build_sensor

    def evaluate() -> list[RunRequest] | SkipReason:
        return first_build_sensor(build_sensor_context(instance=instance))

    requests = evaluate()
    assert isinstance(requests, list)
    assert sorted(r.job_name for r in requests) == ["funnels_and_retention", "incremental_marts"]

    for key in mart_keys(dbt_manifest(), slow=False):
        instance.report_runless_asset_event(AssetMaterialization(asset_key=key))
    requests = evaluate()
    assert [r.job_name for r in requests] == ["funnels_and_retention"]

    add_run(instance, "funnels_and_retention", DagsterRunStatus.STARTED)
    assert isinstance(evaluate(), SkipReason)

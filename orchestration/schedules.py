"""Jobs and schedules that keep the marts fresh.

- ``incremental_marts`` every ``TRACKHOUSE_MARTS_INTERVAL_MINUTES`` (default 5): observe the raw
  tables (and check the collector's buffer), then ``dbt build`` every model but those tagged
  ``hourly``, without their data tests;
- ``funnels_and_retention`` every ``TRACKHOUSE_FUNNELS_INTERVAL_MINUTES`` (default 60): the
  models tagged ``hourly`` (the slow marts funnel_steps and retention, and int_device_days, which
  only retention reads: docs/decisions/0048), the seeds (the funnel definitions in
  ``seeds/funnels.csv``) and every model's data tests (docs/decisions/0047: whole-table checks
  every 5 minutes cost more than the models' updates);
- ``full_refresh``: ``dbt build --full-refresh`` of every model on ``TRACKHOUSE_FULL_REFRESH_CRON``.

Every dbt job carries the ``trackhouse/dbt`` tag, limited to one run in progress by
dagster.yaml, so two dbt builds never overlap; a tick whose job already has a run waiting in
the queue is skipped (that queued run will read the newest raw data anyway).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunConfig,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    schedule,
    sensor,
)
from dagster_dbt import build_dbt_asset_selection

from orchestration.assets import DbtBuildConfig, dbt_models, raw_tables
from orchestration.checks import collector_checks, mart_keys
from orchestration.docs import dbt_docs
from orchestration.project import dbt_manifest
from trackhouse.dbt import HOURLY_SELECTION
from trackhouse.settings import get_settings

if TYPE_CHECKING:  # what define_asset_job returns; not exported by dagster itself
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

DBT_RUN_TAG = "trackhouse/dbt"
SLOW_SELECTION = " ".join(HOURLY_SELECTION)


def dbt_job(name: str, selection: AssetSelection, description: str,
            config: RunConfig | None = None) -> UnresolvedAssetJobDefinition:
    """An asset job carrying the tag dagster.yaml limits to one run at a time."""
    return define_asset_job(
        name, selection=selection, description=description, config=config,
        tags={DBT_RUN_TAG: "build"},
        # in process: the job runs inside its run worker; a process per step would add seconds
        # of start-up to every tick for nothing (dbt itself is one step)
        executor_def=in_process_executor,
    )


incremental_marts_job = dbt_job(
    "incremental_marts",
    AssetSelection.assets(raw_tables)
    | AssetSelection.checks(*collector_checks)
    # the models' data tests are checks of the hourly job (dagster-dbt then runs none here)
    | build_dbt_asset_selection([dbt_models], dbt_exclude=SLOW_SELECTION).without_checks()
    | AssetSelection.assets(dbt_docs),
    "Observe the raw tables, then dbt build every model but those tagged hourly (the data tests "
    "run hourly); republish the dbt docs site when the models or their relations changed.",
)
funnels_and_retention_job = dbt_job(
    "funnels_and_retention",
    build_dbt_asset_selection([dbt_models], dbt_select=SLOW_SELECTION)
    | AssetSelection.checks_for_assets(dbt_models),
    "dbt build of the seeds and the models tagged hourly (funnel_steps, retention and what only "
    "they read; their other inputs are kept fresh by incremental_marts), then the data tests of "
    "every model.",
)
full_refresh_job = dbt_job(
    "full_refresh",
    AssetSelection.assets(dbt_models, dbt_docs),
    "dbt build --full-refresh of every model: rebuilds incremental marts from raw; then the "
    "dbt docs site.",
    config=RunConfig(ops={dbt_models.op.name: DbtBuildConfig(full_refresh=True)}),
)


def cron_every(minutes: int) -> str:
    """A cron string firing every ``minutes``, aligned to the hour or the day."""
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        hours = minutes // 60
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    raise ValueError(
        f"an interval of {minutes} minutes does not divide an hour or a day evenly; "
        "use a divisor of 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) or whole hours dividing 24"
    )


def _pending_run_reason(context: ScheduleEvaluationContext | SensorEvaluationContext,
                        job_name: str, statuses: list[DagsterRunStatus]) -> SkipReason | None:
    runs = context.instance.get_runs(RunsFilter(job_name=job_name, statuses=statuses), limit=1)
    if runs:
        return SkipReason(f"run {runs[0].run_id} of {job_name} is already {runs[0].status.value}")
    return None


def _schedule_for(
    job: UnresolvedAssetJobDefinition, cron: str, name: str, description: str
) -> ScheduleDefinition:
    @schedule(
        name=name, job=job, cron_schedule=cron, execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING, description=description,
    )
    def _schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        skip = _pending_run_reason(context, job.name, [DagsterRunStatus.QUEUED])
        return skip or RunRequest(tags={"trackhouse/trigger": name})

    return _schedule


def build_schedules() -> list[ScheduleDefinition]:
    settings = get_settings()
    return [
        _schedule_for(incremental_marts_job, cron_every(settings.marts_interval_minutes),
                      "incremental_marts_schedule",
                      f"Every {settings.marts_interval_minutes} min "
                      "(TRACKHOUSE_MARTS_INTERVAL_MINUTES)."),
        _schedule_for(funnels_and_retention_job, cron_every(settings.funnels_interval_minutes),
                      "funnels_and_retention_schedule",
                      f"Every {settings.funnels_interval_minutes} min "
                      "(TRACKHOUSE_FUNNELS_INTERVAL_MINUTES)."),
        _schedule_for(full_refresh_job, settings.full_refresh_cron, "full_refresh_schedule",
                      f"`{settings.full_refresh_cron}` UTC (TRACKHOUSE_FULL_REFRESH_CRON)."),
    ]


schedules = build_schedules()

_ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
           DagsterRunStatus.STARTED]


@sensor(
    jobs=[incremental_marts_job, funnels_and_retention_job], minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="On a fresh instance, build every mart at once instead of waiting for the "
    "first schedule ticks (tried again a minute after a failed attempt, until one succeeds).",
)
def first_build_sensor(context: SensorEvaluationContext) -> list[RunRequest] | SkipReason:
    requests = []
    for job, slow in ((incremental_marts_job, False), (funnels_and_retention_job, True)):
        keys = mart_keys(dbt_manifest(), slow=slow)
        if any(context.instance.get_latest_materialization_event(key) for key in keys):
            continue
        if _pending_run_reason(context, job.name, _ACTIVE):
            continue
        latest = context.instance.get_run_records(RunsFilter(job_name=job.name), limit=1)
        if (latest and latest[0].dagster_run.status == DagsterRunStatus.FAILURE
                and latest[0].end_time and time.time() - latest[0].end_time < 60):
            continue
        requests.append(RunRequest(job_name=job.name, tags={"trackhouse/trigger": "first_build"}))
    return requests or SkipReason("the marts have been built, or a build is under way")

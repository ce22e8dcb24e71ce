"""The one Dagster ``Definitions`` of Trackhouse, assembled from the modules beside it.

Load it with ``dagster-webserver -m orchestration.definitions`` (``trackhouse dagster`` does).
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from orchestration.alerts import (
    alerts_sensor,
    email_reports_job,
    email_reports_schedule,
    pipeline_stale_sensor,
)
from orchestration.assets import dbt_models, raw_tables
from orchestration.checks import collector_checks, freshness_checks, freshness_sensor
from orchestration.docs import dbt_docs
from orchestration.lifecycle import retention_job, retention_schedule
from orchestration.resources import build_resources
from orchestration.schedules import (
    first_build_sensor,
    full_refresh_job,
    funnels_and_retention_job,
    incremental_marts_job,
    schedules,
)

defs = Definitions(
    assets=[raw_tables, dbt_models, dbt_docs],
    asset_checks=[*collector_checks, *freshness_checks],
    jobs=[incremental_marts_job, funnels_and_retention_job, full_refresh_job, retention_job,
          email_reports_job],
    schedules=[*schedules, retention_schedule, email_reports_schedule],
    sensors=[first_build_sensor, freshness_sensor, alerts_sensor, pipeline_stale_sensor],
    resources=build_resources(),
    # every job, the implicit ones of UI launches and the freshness sensor too, runs its steps
    # inside its run worker: a process per step costs seconds each on a small machine
    executor=in_process_executor,
)

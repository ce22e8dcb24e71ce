"""The daily retention job: raw events older than their project's period are deleted.

``lifecycle.retention.expire`` does the work; the job carries the dbt tag (dagster.yaml: one
run at a time), so it never deletes staging rows while a dbt build writes them.
"""

# No `from __future__ import annotations`: Dagster reads the context annotation at definition.
from dagster import (
    DefaultScheduleStatus,
    OpExecutionContext,
    ScheduleDefinition,
    in_process_executor,
    job,
    op,
)

from orchestration.schedules import DBT_RUN_TAG
from trackhouse.settings import get_settings


@op(description="Delete raw events (and their staging copies) older than each project's "
                "retention period.")
def expire_raw_events(context: OpExecutionContext) -> None:
    from lifecycle.retention import expire

    deleted = expire(progress=context.log.info)
    context.log.info(f"deleted {sum(deleted.values())} row(s): {deleted or 'nothing expired'}")


@job(name="retention", tags={DBT_RUN_TAG: "retention"}, executor_def=in_process_executor,
     description="Delete raw events older than their project's retention period "
                 "(trackhouse project update --retention-days).")
def retention_job() -> None:
    expire_raw_events()


def build_retention_schedule() -> ScheduleDefinition:
    cron = get_settings().retention_cron
    return ScheduleDefinition(
        name="retention_schedule", job=retention_job, cron_schedule=cron,
        execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
        description=f"`{cron}` UTC (TRACKHOUSE_RETENTION_CRON).",
    )


retention_schedule = build_retention_schedule()

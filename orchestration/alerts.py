"""Alerts and e-mail reports in Dagster (the work itself is in alerts/):

- ``alerts_sensor``: after each successful marts build (incremental_marts, full_refresh,
  funnels_and_retention), evaluate the alert rules on the fresh marts and deliver what fired or
  recovered (and retry what failed before);
- ``pipeline_stale_sensor``: every ``TRACKHOUSE_ALERTS_STALE_INTERVAL_MINUTES``, the
  pipeline_stale rules (a stalled pipeline has no successful build to react to);
- ``email_reports`` job on ``TRACKHOUSE_REPORTS_CRON``: send the weekly and monthly reports due.
"""


from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    OpExecutionContext,
    RunStatusSensorContext,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    in_process_executor,
    job,
    op,
    run_status_sensor,
    sensor,
)

from orchestration.schedules import (
    full_refresh_job,
    funnels_and_retention_job,
    incremental_marts_job,
)
from trackhouse.settings import get_settings

FIGURE_METRICS = {"visitors", "pageviews", "event_count", "funnel_conversion"}
# Dagster cancels a sensor evaluation after 60 s; work left over is first in line next time
EVALUATION_BUDGET_S = 40.0


def _describe(summary) -> str:  # alerts.evaluate.Summary
    return (f"{summary.evaluated} rules evaluated, fired {summary.fired}, recovered "
            f"{summary.recovered}, {summary.sent} notifications sent, {summary.failed} failed, "
            f"{summary.deferred} deferred"
            + (f", errors {summary.errors}" if summary.errors else ""))


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[incremental_marts_job, full_refresh_job, funnels_and_retention_job],
    name="alerts_sensor", minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="After a successful marts build, evaluate the alert rules and send what fired "
    "or recovered (alerts/evaluate.py).",
)
def alerts_sensor(context: RunStatusSensorContext) -> SkipReason:
    from alerts.evaluate import evaluate_rules

    summary = evaluate_rules(metrics=FIGURE_METRICS, budget_s=EVALUATION_BUDGET_S)
    message = f"after run {context.dagster_run.run_id}: {_describe(summary)}"
    context.log.info(message)
    return SkipReason(message)


@sensor(
    name="pipeline_stale_sensor",
    minimum_interval_seconds=60 * get_settings().alerts_stale_interval_minutes,
    default_status=DefaultSensorStatus.RUNNING,
    description="Evaluate the pipeline_stale alert rules (the marts' freshness, as the "
    "freshness checks judge it) and retry undelivered notifications.",
)
def pipeline_stale_sensor(context: SensorEvaluationContext) -> SkipReason:
    from alerts.evaluate import evaluate_rules

    summary = evaluate_rules(metrics={"pipeline_stale"}, budget_s=EVALUATION_BUDGET_S)
    return SkipReason(_describe(summary))


@op(description="Send every e-mail report due (alerts/reports.py).")
def send_email_reports(context: OpExecutionContext) -> None:
    from alerts.reports import send_due_reports

    summary = send_due_reports()
    context.log.info(f"reports sent {summary.sent}, already sent {summary.skipped}, "
                     f"failed {summary.failed}")


@job(name="email_reports", executor_def=in_process_executor,
     description="Send the weekly and monthly e-mail reports that are due.")
def email_reports_job() -> None:
    send_email_reports()


email_reports_schedule = ScheduleDefinition(
    name="email_reports_schedule", job=email_reports_job,
    cron_schedule=get_settings().reports_cron, execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description=f"`{get_settings().reports_cron}` UTC (TRACKHOUSE_REPORTS_CRON); each "
    "subscription gets its period's report once.",
)

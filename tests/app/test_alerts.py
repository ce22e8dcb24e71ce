"""Alert rules end to end: figures planted in the daily_metrics mart of scratch projects, rules
evaluated by real Dagster sensor evaluations, notifications received by a local webhook
receiver and a local SMTP server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from alerts_support import Inbox, Webhook, smtp_server, webhook_receiver
from dashboard_fixture import DashboardData


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    with smtp_server(monkeypatch) as received:
        yield received


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with webhook_receiver() as hook:
        yield hook


@pytest.fixture
def scratch_projects(dashboard_data: DashboardData) -> Iterator[Callable[[], str]]:
    """Projects of the test's own (metadata only: nothing mirrored to the raw tables); their
    planted mart rows and rules are removed afterwards."""
    from accounts.db import session_scope
    from accounts.models import Project
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    created: list[str] = []

    def make() -> str:
        project_id = f"alerts-{uuid.uuid4().hex[:8]}"
        with session_scope() as session:
            session.add(Project(id=project_id, name=f"Alerting {project_id}", timezone="UTC"))
        created.append(project_id)
        return project_id

    yield make
    client = warehouse()
    try:
        for project_id in created:
            client.command(f"alter table {get_settings().analytics_database}.daily_metrics "
                           "delete where project_id = {p:String} settings mutations_sync = 2",
                           parameters={"p": project_id})
    finally:
        client.close()
    with session_scope() as session:
        for project_id in created:
            project = session.get(Project, project_id)
            if project is not None:
                session.delete(project)


def plant(project_id: str, day: date, visitors: int) -> None:
    """The daily_metrics row of one project day (replacing any planted before)."""
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    table = f"{get_settings().analytics_database}.daily_metrics"
    client = warehouse()
    try:
        client.command(f"alter table {table} delete where project_id = {{p:String}} "
                       "and day = {d:Date} settings mutations_sync = 2",
                       parameters={"p": project_id, "d": day})
        client.insert(table, [[project_id, day, visitors, visitors * 3, visitors * 4]],
                      column_names=["project_id", "day", "visitors", "pageviews", "events"])
    finally:
        client.close()


@pytest.fixture
def run_alerts_sensor(dashboard_data: DashboardData) -> Iterator[Callable[[], str]]:
    """Evaluations of the real alerts_sensor, as Dagster makes them after a successful run (a
    trivial job's run: the marts build itself is not what is under test)."""
    from dagster import DagsterInstance, build_run_status_sensor_context, job, op

    from orchestration.alerts import alerts_sensor

    @op
    def noop() -> None:
        pass

    @job
    def marts_stand_in() -> None:
        noop()

    with DagsterInstance.ephemeral() as instance:
        result = marts_stand_in.execute_in_process(instance=instance)

        def evaluate() -> str:
            context = build_run_status_sensor_context(
                sensor_name="alerts_sensor", dagster_instance=instance,
                dagster_run=result.dagster_run, dagster_event=result.get_run_success_event())
            outcome = alerts_sensor(context)
            return str(getattr(outcome, "skip_message", outcome))

        yield evaluate


def test_a_planted_drop_fires_once_and_recovers_once(
        scratch_projects: Callable[[], str], inbox: Inbox, webhook: Webhook,
        run_alerts_sensor: Callable[[], str]) -> None:
    from accounts.db import session_scope
    from alerts.rules import create_rule, history

    project_id = scratch_projects()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    plant(project_id, yesterday - timedelta(days=7), 100)
    plant(project_id, yesterday, 40)
    with session_scope() as session:
        rule_id = create_rule(session, project_id=project_id, name="traffic drop",
                              metric="visitors", condition="drop", threshold=50, window="day",
                              webhook_url=webhook.url, emails=["ops@example.test"]).id

    run_alerts_sensor()
    assert [m["kind"] for m in webhook.received] == ["firing"]
    fired = webhook.received[0]
    assert fired["rule_id"] == rule_id and fired["value"] == 40 and fired["baseline"] == 100
    assert "FIRING" in fired["text"] and "down 60.0%" in fired["text"]
    assert [m["To"] for m in inbox.messages] == ["ops@example.test"]
    assert "FIRING" in inbox.messages[0]["Subject"]

    run_alerts_sensor()  # the same incident: nothing new
    assert len(webhook.received) == 1 and len(inbox.messages) == 1

    plant(project_id, yesterday, 95)
    summary = run_alerts_sensor()
    assert f"recovered [{rule_id}]" in summary
    assert [m["kind"] for m in webhook.received] == ["firing", "recovered"]
    assert "RECOVERED" in webhook.received[1]["text"]
    assert len(inbox.messages) == 2 and "RECOVERED" in inbox.messages[1]["Subject"]

    run_alerts_sensor()
    assert len(webhook.received) == 2 and len(inbox.messages) == 2
    with session_scope() as session:
        events = history(session, project_id)
        assert [(e.kind, e.delivered) for e in events] == [("recovered", True), ("firing", True)]
        assert events[1].deliveries == {"webhook": "sent", "email:ops@example.test": "sent"}


def test_a_failing_webhook_is_recorded_retried_and_stops_nothing_else(
        scratch_projects: Callable[[], str], inbox: Inbox, webhook: Webhook) -> None:
    from accounts.db import session_scope
    from alerts.evaluate import evaluate_rules
    from alerts.rules import create_rule, history

    failing, other = scratch_projects(), scratch_projects()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    for project_id in (failing, other):
        plant(project_id, yesterday, 500)
    with session_scope() as session:
        create_rule(session, project_id=failing, metric="visitors", condition="above",
                    threshold=100, webhook_url=webhook.url, emails=["a@example.test"])
        create_rule(session, project_id=other, metric="pageviews", condition="above",
                    threshold=100, emails=["b@example.test"])
    webhook.failures_left = 1

    first = evaluate_rules()
    assert first.failed == 1 and first.sent == 2
    assert sorted(m["To"] for m in inbox.messages) == ["a@example.test", "b@example.test"]
    with session_scope() as session:
        [event] = history(session, failing)
        assert not event.delivered and "HTTP 500" in event.deliveries["webhook"]
        assert event.deliveries["email:a@example.test"] == "sent"

    second = evaluate_rules()  # no new incident; the webhook alone is retried
    assert (second.sent, second.failed, second.fired) == (1, 0, [])
    assert [m["kind"] for m in webhook.received] == ["firing"]
    assert len(inbox.messages) == 2
    with session_scope() as session:
        [event] = history(session, failing)
        assert event.delivered and event.attempts == 2


def test_a_stale_pipeline_alerts_and_recovers(
        scratch_projects: Callable[[], str], webhook: Webhook,
        set_marts_built_at: Callable[[datetime], None]) -> None:
    from dagster import build_sensor_context

    from accounts.db import session_scope
    from alerts.rules import create_rule
    from orchestration.alerts import pipeline_stale_sensor

    project_id = scratch_projects()
    with session_scope() as session:
        create_rule(session, project_id=project_id, metric="pipeline_stale", condition="above",
                    threshold=0, webhook_url=webhook.url)
    set_marts_built_at(datetime.now(UTC) - timedelta(hours=3))
    pipeline_stale_sensor(build_sensor_context())
    assert [m["kind"] for m in webhook.received] == ["firing"]
    assert "last built 180 min ago" in webhook.received[0]["text"]
    set_marts_built_at(datetime.now(UTC))
    pipeline_stale_sensor(build_sensor_context())
    assert [m["kind"] for m in webhook.received] == ["firing", "recovered"]


@pytest.mark.parametrize(("change", "message"), [
    ({"metric": "revenue"}, "unknown metric 'revenue'"),
    ({"condition": "drop", "threshold": 0}, "threshold is a percentage above 0"),
    ({"metric": "event_count"}, "needs a target: the event name"),
    ({"metric": "funnel_conversion", "target": "checkout", "window": "hour"}, "day window"),
    ({"webhook_url": "file:///etc/passwd"}, "must be an http(s) URL"),
    ({"webhook_url": "https://[::1/hook"}, "must be an http(s) URL"),
    ({"webhook_url": "", "emails": []}, "give a webhook URL or at least one e-mail"),
    ({"project_id": "no-such-project"}, "no project 'no-such-project'"),
])
def test_bad_rules_are_refused_with_a_clear_message(
        scratch_projects: Callable[[], str], change: dict, message: str) -> None:
    from accounts.db import session_scope
    from accounts.errors import AccountsError
    from alerts.rules import create_rule

    rule = {"project_id": scratch_projects(), "metric": "visitors", "condition": "drop",
            "threshold": 20, "webhook_url": "https://hooks.example.test/x", **change}
    with pytest.raises(AccountsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        with session_scope() as session:
            create_rule(session, **rule)


def test_every_metric_reads_its_figure(dashboard_data: DashboardData) -> None:
    """Each metric's figure of a rule over the shop's windows, against the fixture's own count
    (event_count) or the marts' invariants (a conversion is a share)."""
    import dashboard_fixture as fd

    from accounts.models import AlertRule
    from alerts.evaluate import day_window, figure, hour_window, last_window

    tz = fd.PROJECT_ZONES[fd.SHOP]
    window = last_window("day", tz, dashboard_data.now)
    for days_back in range(0, 8):
        day = day_window(window.day - timedelta(days=days_back), tz)
        expected = sum(1 for e in fd.counted(dashboard_data.events, fd.SHOP)
                       if e.name == "signup" and day.start <= e.created_at < day.end)
        rule = AlertRule(project_id=fd.SHOP, metric="event_count", target="signup")
        assert figure(rule, day) == expected
    hour = hour_window(dashboard_data.now.replace(minute=0, second=0) - timedelta(hours=1), tz)
    visitors = figure(AlertRule(project_id=fd.SHOP, metric="visitors"), hour)
    assert visitors == len({e.device_id for e in fd.counted(dashboard_data.events, fd.SHOP)
                            if hour.start <= e.created_at < hour.end})
    conversion = figure(AlertRule(project_id=fd.SHOP, metric="funnel_conversion",
                                  target="no-such-funnel"), window)
    assert conversion is None


def test_a_refused_smtp_login_is_recorded_without_the_password(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A real SMTP server that refuses the login: the error names the user and the server's
    code, never the password (logged or returned)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from alerts.notify import DeliveryError, Mail, send_mail
    from trackhouse.settings import get_settings

    password = "hunter2-do-not-log"
    from alerts_support import free_port

    controller = Controller(object(), hostname="127.0.0.1", port=free_port(),
                            auth_require_tls=False,
                            authenticator=lambda *args: AuthResult(success=False, handled=False))
    controller.start()
    try:
        for name, value in {"HOST": "127.0.0.1", "PORT": str(controller.port),
                            "STARTTLS": "false", "USER": "mailer", "PASSWORD": password}.items():
            monkeypatch.setenv(f"TRACKHOUSE_SMTP_{name}", value)
        get_settings.cache_clear()
        with pytest.raises(DeliveryError) as refused:
            send_mail(Mail(to="ops@example.test", subject="s", text="t"))
    finally:
        controller.stop()
        get_settings.cache_clear()
    assert "mailer" in str(refused.value) and "535" in str(refused.value)
    assert password not in str(refused.value) and password not in caplog.text
    assert password not in repr(get_settings())


def test_the_cli_manages_rules(scratch_projects: Callable[[], str]) -> None:
    import json

    from typer.testing import CliRunner

    from trackhouse.cli import app

    project_id = scratch_projects()
    runner = CliRunner()
    refused = runner.invoke(app, ["alerts", "add", "-p", project_id, "--metric", "visits",
                                  "--webhook", "https://hooks.example.test/a"])
    assert refused.exit_code == 1 and "unknown metric 'visits'" in refused.output
    added = runner.invoke(app, ["alerts", "add", "-p", project_id, "--metric", "pageviews",
                                "--condition", "rise", "--threshold", "25", "--window", "hour",
                                "--email", "a@example.test", "--email", "b@example.test"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["alerts", "list", "-p", project_id, "--json"])
    [rule] = json.loads(listed.stdout)
    assert (rule["metric"], rule["condition"], rule["threshold"], rule["window"],
            rule["emails"], rule["state"]) == ("pageviews", "rise", 25.0, "hour",
                                               ["a@example.test", "b@example.test"], "ok")
    assert runner.invoke(app, ["alerts", "remove", str(rule["id"])]).exit_code == 0
    assert json.loads(runner.invoke(app, ["alerts", "list", "-p", project_id,
                                          "--json"]).stdout) == []


def test_a_spent_time_budget_defers_the_rest(scratch_projects: Callable[[], str],
                                             webhook: Webhook) -> None:
    """The sensor's budget (Dagster cancels a long evaluation): nothing is started after it, and
    what was left is counted, then evaluated next time."""
    from accounts.db import session_scope
    from alerts.evaluate import evaluate_rules
    from alerts.rules import create_rule, get_rule

    project_id = scratch_projects()
    with session_scope() as session:
        ids = [create_rule(session, project_id=project_id, metric="visitors", condition="above",
                           threshold=10 ** 9, webhook_url=webhook.url).id for _ in range(2)]
    spent = evaluate_rules(budget_s=0)
    assert spent.evaluated == 0 and spent.deferred >= 2
    assert evaluate_rules(budget_s=60).deferred == 0
    with session_scope() as session:
        assert all(get_rule(session, i).last_evaluated_at is not None for i in ids)

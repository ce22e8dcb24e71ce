"""``trackhouse alerts ...`` (alert rules, their history, an evaluation on demand) and
``trackhouse reports ...`` (e-mail report subscriptions, sending the due reports)."""

from __future__ import annotations

from typing import Any

import typer

from trackhouse.cli.commands.accounts import _accounts, _print_json, _table, _when, console

alerts_app = typer.Typer(help="Alert rules on a project's figures, and their history.",
                         no_args_is_help=True)
reports_app = typer.Typer(help="Weekly and monthly e-mail reports.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(reports_app, name="reports")


PROJECT = typer.Option(..., "--project", "-p", help="The project's id.")
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
EMAILS = typer.Option([], help="Address to e-mail (repeatable).")


@alerts_app.command("add")
def add(
    project: str = PROJECT,
    metric: str = typer.Option(..., help="visitors, pageviews, event_count, funnel_conversion "
                               "or pipeline_stale."),
    condition: str = typer.Option("drop", help="drop or rise (by --threshold % against the "
                                  "same window a week earlier), above or below --threshold."),
    threshold: float = typer.Option(0.0, help="A percentage for drop/rise; a value for "
                                    "above/below (a funnel conversion as a share 0-1)."),
    window: str = typer.Option("day", help="day (the last complete day) or hour."),
    target: str = typer.Option("", help="The event name (event_count) or funnel "
                               "(funnel_conversion)."),
    name: str = typer.Option("", help="A name shown in notifications."),
    webhook: str = typer.Option("", help="Webhook URL (gets JSON with a Slack-style `text`)."),
    email: list[str] = EMAILS,
) -> None:
    """Create an alert rule."""
    from alerts.rules import create_rule

    with _accounts() as session:
        rule = create_rule(session, project_id=project, metric=metric, condition=condition,
                           threshold=threshold, window=window, target=target, name=name,
                           webhook_url=webhook, emails=email)
        console.print(f"created alert rule [bold]{rule.id}[/bold] ({rule.name})",
                      highlight=False)


@alerts_app.command("list")
def list_(project: str = typer.Option(None, "--project", "-p"), as_json: bool = JSON) -> None:
    """List alert rules and where each stands."""
    from alerts.rules import list_rules

    with _accounts() as session:
        rows: list[dict[str, Any]] = [
                {"id": r.id, "project": r.project_id, "name": r.name, "metric": r.metric,
                 "target": r.target, "condition": r.condition, "threshold": r.threshold,
                 "window": r.time_window, "webhook": r.webhook_url, "emails": r.emails,
                 "enabled": r.enabled, "state": r.state, "last_value": r.last_value,
                 "last_evaluated_at": _when(r.last_evaluated_at), "last_error": r.last_error}
                for r in list_rules(session, project)]
    if as_json:
        _print_json(rows)
        return
    _table("Alert rules", ["id", "project", "name", "rule", "notify", "state", "last value"],
           [[str(r["id"]), r["project"], r["name"],
             f"{r['metric']} {r['target']} {r['condition']} {r['threshold']:g} per {r['window']}",
             ", ".join(filter(None, [r["webhook"], *r["emails"]])),
             r["state"] if r["enabled"] else "disabled",
             "" if r["last_value"] is None else f"{r['last_value']:g}"] for r in rows])


@alerts_app.command("remove")
def remove(rule_id: int = typer.Argument(..., help="The rule's id.")) -> None:
    """Delete an alert rule and its history."""
    from alerts.rules import delete_rule

    with _accounts() as session:
        delete_rule(session, rule_id)
    console.print(f"deleted alert rule {rule_id}")


@alerts_app.command("enable")
def enable(rule_id: int = typer.Argument(...)) -> None:
    """Evaluate the rule again."""
    from alerts.rules import set_enabled

    with _accounts() as session:
        set_enabled(session, rule_id, True)
    console.print(f"enabled alert rule {rule_id}")


@alerts_app.command("disable")
def disable(rule_id: int = typer.Argument(...)) -> None:
    """Stop evaluating the rule (an open incident ends without a message)."""
    from alerts.rules import set_enabled

    with _accounts() as session:
        set_enabled(session, rule_id, False)
    console.print(f"disabled alert rule {rule_id}")


@alerts_app.command("history")
def history_(project: str = typer.Option(None, "--project", "-p"),
             limit: int = typer.Option(50), as_json: bool = JSON) -> None:
    """What fired and recovered, and whether each notification went out."""
    from alerts.rules import history

    with _accounts() as session:
        rows: list[dict[str, Any]] = [
                {"id": e.id, "at": _when(e.at), "project": e.project_id, "rule": e.rule_id,
                 "kind": e.kind, "message": e.message, "deliveries": e.deliveries,
                 "delivered": e.delivered} for e in history(session, project, limit)]
    if as_json:
        _print_json(rows)
        return
    _table("Alert history", ["id", "at", "rule", "kind", "message", "delivered"],
           [[str(r["id"]), r["at"], str(r["rule"]), r["kind"], r["message"],
             "yes" if r["delivered"] else str(r["deliveries"])] for r in rows])


@alerts_app.command("evaluate")
def evaluate() -> None:
    """Evaluate every rule now (what the Dagster sensor does after each marts build)."""
    from alerts.evaluate import evaluate_rules

    with _accounts():
        pass  # the database at its head revision
    summary = evaluate_rules()
    console.print(f"{summary.evaluated} evaluated; fired {summary.fired}, recovered "
                  f"{summary.recovered}; {summary.sent} sent, {summary.failed} failed"
                  + (f"; errors {summary.errors}" if summary.errors else ""), highlight=False)


@reports_app.command("subscribe")
def subscribe_(project: str = PROJECT,
               email: str = typer.Option(..., help="The recipient."),
               frequency: str = typer.Option("weekly", help="weekly or monthly.")) -> None:
    """Send a project's report to a recipient every week or month."""
    from alerts.rules import subscribe

    with _accounts() as session:
        subscription = subscribe(session, project_id=project, email=email, frequency=frequency)
        console.print(f"subscription [bold]{subscription.id}[/bold]: {frequency} report of "
                      f"{project} to {subscription.email}", highlight=False)


@reports_app.command("list")
def list_reports(project: str = typer.Option(None, "--project", "-p"),
                 as_json: bool = JSON) -> None:
    """List report subscriptions."""
    from alerts.rules import list_subscriptions

    with _accounts() as session:
        rows: list[dict[str, Any]] = [{"id": s.id, "project": s.project_id, "email": s.email,
                 "frequency": s.frequency, "unsubscribed_at": _when(s.unsubscribed_at),
                 "last_period": s.last_period, "last_sent_at": _when(s.last_sent_at),
                 "last_error": s.last_error} for s in list_subscriptions(session, project)]
    if as_json:
        _print_json(rows)
        return
    _table("E-mail reports", ["id", "project", "email", "frequency", "last sent", "status"],
           [[str(r["id"]), r["project"], r["email"], r["frequency"],
             f"{r['last_period']} {r['last_sent_at']}".strip(),
             "unsubscribed" if r["unsubscribed_at"] else (r["last_error"] or "active")]
            for r in rows])


@reports_app.command("unsubscribe")
def unsubscribe_(subscription_id: int = typer.Argument(...)) -> None:
    """Stop a subscription (as its e-mail's unsubscribe link does)."""
    from alerts.rules import unsubscribe

    with _accounts() as session:
        unsubscribe(session, subscription_id)
    console.print(f"unsubscribed {subscription_id}")


@reports_app.command("send")
def send(force: bool = typer.Option(False, help="Send even if this period went out.")) -> None:
    """Send every report due now (what the Dagster schedule does)."""
    from alerts.reports import send_due_reports

    with _accounts():
        pass
    summary = send_due_reports(force=force)
    console.print(f"sent {summary.sent}; {summary.skipped} already sent; failed "
                  f"{summary.failed}", highlight=False)
    if summary.failed:
        raise typer.Exit(1)

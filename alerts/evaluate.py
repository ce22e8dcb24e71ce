"""Evaluating the alert rules: the figure of each rule's last complete window against its
condition, an incident state machine per rule, and the delivery of its notifications.

- Window: the last complete project day (``day``) or hour (``hour``) on the project's clock;
  ``drop`` / ``rise`` compare it with the same window seven days earlier.
- State: ``ok`` -> ``firing`` records a ``firing`` event, ``firing`` -> ``ok`` a ``recovered``
  one; re-evaluating an unchanged window changes nothing, so each incident notifies once.
- Delivery: every channel of an event (the webhook, each e-mail address) is tried; a failure is
  recorded on the event and retried at the next evaluation, and never stops other channels,
  rules or projects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from accounts.db import session_scope
from accounts.models import AlertEvent, AlertRule, Project
from alerts.notify import DeliveryError, Mail, post_webhook, send_mail
from queries import alerts as figures
from queries.freshness import is_stale, marts_built_at
from queries.periods import DateRange

log = logging.getLogger(__name__)
WEEK = timedelta(days=7)
# a channel still failing after this many evaluations is given up (the event stays recorded)
MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class Window:
    """One window of a project's clock: a day, or an hour of a day."""

    day: date
    hour: int | None
    start: datetime  # UTC bounds [start, end)
    end: datetime

    @property
    def label(self) -> str:
        return str(self.day) if self.hour is None else f"{self.day} {self.hour:02d}:00"


def last_window(kind: str, tz: str, now: datetime) -> Window:
    """The last complete day or hour before ``now`` on the clock of zone ``tz``."""
    if kind == "day":
        day = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)
        return day_window(day, tz)
    start = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return hour_window(start, tz)


def day_window(day: date, tz: str) -> Window:
    start, end = DateRange(day, day, tz).utc_bounds()
    return Window(day, None, start, end)


def hour_window(start: datetime, tz: str) -> Window:
    local = start.astimezone(ZoneInfo(tz))
    return Window(local.date(), local.hour, start, start + timedelta(hours=1))


def week_before(window: Window, tz: str) -> Window:
    if window.hour is None:
        return day_window(window.day - WEEK, tz)
    return hour_window(window.start - WEEK, tz)


def figure(rule: AlertRule, window: Window) -> float | None:
    """The rule's figure over ``window`` (dbt relations only: queries/alerts.py)."""
    if rule.metric in figures.TRAFFIC_COLUMNS:
        if window.hour is None:
            return figures.daily_figure(rule.project_id, rule.metric, window.day)
        return figures.hourly_figure(rule.project_id, rule.metric, window.day, window.hour)
    if rule.metric == "event_count":
        return figures.event_count(rule.project_id, rule.target, window.start, window.end)
    if rule.metric == "funnel_conversion":
        return figures.funnel_conversion(rule.project_id, rule.target, window.day)
    raise ValueError(f"no figure for metric {rule.metric}")


@dataclass(frozen=True)
class Verdict:
    breached: bool
    value: float | None
    baseline: float | None
    text: str  # what was seen, in words


def _show(value: float | None, metric: str) -> str:
    if value is None:
        return "none"
    if metric == "funnel_conversion":
        return f"{value:.1%}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _what(rule: AlertRule) -> str:
    return f"{rule.target} events" if rule.metric == "event_count" else (
        f"conversion of funnel {rule.target}" if rule.metric == "funnel_conversion"
        else rule.metric)


def judge(rule: AlertRule, value: float | None, baseline: float | None,
          window: Window, earlier: Window | None) -> Verdict:
    """Whether ``value`` (and ``baseline``, the week before) meets the rule's condition."""
    what, shown = _what(rule), _show(value, rule.metric)
    if rule.condition in ("above", "below"):
        breached = value is not None and (
            value > rule.threshold if rule.condition == "above" else value < rule.threshold)
        return Verdict(breached, value, None,
                       f"{what} in {window.label} was {shown} (alert when {rule.condition} "
                       f"{_show(rule.threshold, rule.metric)})")
    assert earlier is not None
    if value is None or not baseline:  # nothing to compare a change with
        change = None
        breached = False
    else:
        change = (value - baseline) / baseline * 100
        breached = (change <= -rule.threshold if rule.condition == "drop"
                    else change >= rule.threshold)
    moved = "unchanged" if change is None else (
        f"{'down' if change < 0 else 'up'} {abs(change):.1f}%")
    return Verdict(breached, value, baseline,
                   f"{what} in {window.label} was {shown}, {moved} from "
                   f"{_show(baseline, rule.metric)} in {earlier.label} "
                   f"(alert on a {rule.condition} of {rule.threshold:g}%)")


def evaluate(rule: AlertRule, tz: str, now: datetime) -> Verdict:
    if rule.metric == "pipeline_stale":
        marts_built_at.clear()  # a cache, if one is installed, may be 30 s old: not for a sensor
        built = marts_built_at()
        age = None if built is None else (now - built).total_seconds() / 60
        text = ("the marts have never been built" if built is None else
                f"the marts were last built {age:.0f} min ago, at {built:%Y-%m-%d %H:%M} UTC")
        return Verdict(is_stale(built, now), age, None, text)
    window = last_window(rule.time_window, tz, now)
    value = figure(rule, window)
    if rule.condition in ("above", "below"):
        return judge(rule, value, None, window, None)
    earlier = week_before(window, tz)
    return judge(rule, value, figure(rule, earlier), window, earlier)


@dataclass
class Summary:
    evaluated: int = 0
    fired: list[int] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0
    deferred: int = 0  # rules or events left for the next evaluation (time budget spent)


def evaluate_rules(now: datetime | None = None, *, metrics: set[str] | None = None,
                   deliver: bool = True, budget_s: float | None = None) -> Summary:
    """Evaluate every enabled rule (of ``metrics``, default all), each in a transaction of its
    own, then deliver what is undelivered. With ``budget_s``, stop starting new work once that
    many seconds have passed: the least recently evaluated rules go first, so what is left over
    comes first next time."""
    now = now or datetime.now(UTC)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    summary = Summary()
    with session_scope() as session:
        query = select(AlertRule.id).where(AlertRule.enabled.is_(True)).order_by(
            AlertRule.last_evaluated_at.is_(None).desc(), AlertRule.last_evaluated_at,
            AlertRule.id)
        if metrics is not None:
            query = query.where(AlertRule.metric.in_(metrics))
        rule_ids = list(session.scalars(query))
    for position, rule_id in enumerate(rule_ids):
        if deadline is not None and time.monotonic() > deadline:
            summary.deferred += len(rule_ids) - position
            break
        try:
            _evaluate_one(rule_id, now, summary)
        except Exception as error:  # one rule's failure never stops the others
            log.warning("alert rule %s not evaluated: %s", rule_id, error)
            summary.errors[rule_id] = f"{type(error).__name__}: {error}"[:2000]
            with session_scope() as session:
                rule = session.get(AlertRule, rule_id)
                if rule is not None:
                    rule.last_error = summary.errors[rule_id]
                    rule.last_evaluated_at = now
    if deliver:
        deliver_pending(summary, deadline)
    return summary


def _evaluate_one(rule_id: int, now: datetime, summary: Summary) -> None:
    with session_scope() as session:
        rule = session.get(AlertRule, rule_id)
        if rule is None or not rule.enabled:
            return
        project = session.get(Project, rule.project_id)
        verdict = evaluate(rule, project.timezone if project else "UTC", now)
        summary.evaluated += 1
        rule.last_value, rule.last_evaluated_at, rule.last_error = verdict.value, now, ""
        kind = None
        if verdict.breached and rule.state == "ok":
            rule.state, kind = "firing", "firing"
            summary.fired.append(rule.id)
        elif not verdict.breached and rule.state == "firing":
            rule.state, kind = "ok", "recovered"
            summary.recovered.append(rule.id)
        if kind is not None:
            name = project.name if project else rule.project_id
            headline = "FIRING" if kind == "firing" else "RECOVERED"
            session.add(AlertEvent(
                rule_id=rule.id, project_id=rule.project_id, at=now, kind=kind,
                value=verdict.value, baseline=verdict.baseline,
                message=f"[Trackhouse] {headline} {name}: {rule.name}. {verdict.text}"[:2000]))


def channels(rule: AlertRule) -> list[str]:
    return (["webhook"] if rule.webhook_url else []) + [f"email:{a}" for a in rule.emails]


def _sender(rule: AlertRule, event: AlertEvent) -> Callable[[str], None]:
    def send(channel: str) -> None:
        if channel == "webhook":
            post_webhook(rule.webhook_url, {
                "text": event.message, "kind": event.kind, "rule_id": rule.id,
                "rule": rule.name, "project_id": rule.project_id, "metric": rule.metric,
                "target": rule.target, "condition": rule.condition,
                "threshold": rule.threshold, "window": rule.time_window,
                "value": event.value, "baseline": event.baseline, "at": event.at.isoformat()})
        else:
            subject = event.message.split(". ", 1)[0]
            send_mail(Mail(to=channel.removeprefix("email:"), subject=subject,
                           text=event.message + "\n"))
    return send


def deliver_pending(summary: Summary | None = None,
                    deadline: float | None = None) -> Summary:
    """Try every channel not yet reached of every undelivered event, oldest first (until the
    ``time.monotonic()`` deadline, if any)."""
    summary = summary or Summary()
    with session_scope() as session:
        event_ids = list(session.scalars(
            select(AlertEvent.id).where(AlertEvent.delivered.is_(False),
                                        AlertEvent.attempts < MAX_ATTEMPTS)
            .order_by(AlertEvent.id)))
    for position, event_id in enumerate(event_ids):
        if deadline is not None and time.monotonic() > deadline:
            summary.deferred += len(event_ids) - position
            break
        with session_scope() as session:
            event = session.get(AlertEvent, event_id)
            rule = session.get(AlertRule, event.rule_id) if event else None
            if event is None or rule is None:
                continue
            deliveries = dict(event.deliveries or {})
            send = _sender(rule, event)
            for channel in channels(rule):
                if deliveries.get(channel) == "sent":
                    continue
                try:
                    send(channel)
                except DeliveryError as error:
                    deliveries[channel] = str(error)[:500]
                    summary.failed += 1
                    log.warning("alert %s to %s not delivered: %s", event.id, channel, error)
                else:
                    deliveries[channel] = "sent"
                    summary.sent += 1
            event.deliveries = deliveries
            event.attempts += 1
            event.delivered = all(v == "sent" for v in deliveries.values())
    return summary

"""Managing alert rules and report subscriptions: the functions the CLI and the Admin page call.

Every change is validated here (one place), raising ``accounts.errors`` exceptions whose
messages are shown to the user as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts.errors import InvalidInput, NotFound
from accounts.models import (
    ALERT_CONDITIONS,
    ALERT_METRICS,
    ALERT_WINDOWS,
    REPORT_FREQUENCIES,
    AlertEvent,
    AlertRule,
    Project,
    ReportSubscription,
    utcnow,
)
from accounts.validation import normalize_email

# metrics that need a target (the event name, the funnel) and what it is called
TARGETS = {"event_count": "event name", "funnel_conversion": "funnel"}


def _choice(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise InvalidInput(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")
    return value


def _webhook(url: str) -> str:
    url = url.strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        scheme, host = "", None
    if not host or scheme not in ("http", "https"):
        raise InvalidInput(f"webhook URL {url!r} must be an http(s) URL with a host")
    return url


def _project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project {project_id!r}")
    return project


def create_rule(session: Session, *, project_id: str, metric: str, condition: str,
                threshold: float, window: str = "day", target: str = "", name: str = "",
                webhook_url: str = "", emails: Sequence[str] = ()) -> AlertRule:
    """A new rule; it starts ``ok`` (a condition already true fires at its first evaluation)."""
    _project(session, project_id)
    _choice(metric, ALERT_METRICS, "metric")
    _choice(condition, ALERT_CONDITIONS, "condition")
    _choice(window, ALERT_WINDOWS, "window")
    target = target.strip()
    if metric in TARGETS and not target:
        raise InvalidInput(f"metric {metric} needs a target: the {TARGETS[metric]}")
    if metric not in TARGETS and target:
        raise InvalidInput(f"metric {metric} takes no target")
    if metric == "funnel_conversion" and window != "day":
        raise InvalidInput("funnel_conversion is computed per day: use the day window")
    if metric == "pipeline_stale":
        condition, threshold = "above", 0.0  # fires while the marts are stale
    if condition in ("drop", "rise") and not 0 < threshold <= 10_000:
        raise InvalidInput(f"a {condition} threshold is a percentage above 0, "
                           f"got {threshold}")
    if metric == "funnel_conversion" and condition in ("above", "below") and not (
            0 <= threshold <= 1):
        raise InvalidInput("a funnel conversion threshold is a share between 0 and 1")
    addresses = [normalize_email(e) for e in emails if e.strip()]
    webhook = _webhook(webhook_url)
    if not webhook and not addresses:
        raise InvalidInput("give a webhook URL or at least one e-mail address to notify")
    rule = AlertRule(project_id=project_id, name=name.strip()[:200] or f"{metric} {condition}",
                     metric=metric, target=target, condition=condition,
                     threshold=float(threshold), time_window=window, webhook_url=webhook,
                     emails=addresses)
    session.add(rule)
    session.flush()
    return rule


def list_rules(session: Session, project_id: str | None = None) -> list[AlertRule]:
    query = select(AlertRule).order_by(AlertRule.project_id, AlertRule.id)
    if project_id is not None:
        query = query.where(AlertRule.project_id == project_id)
    return list(session.scalars(query))


def get_rule(session: Session, rule_id: int) -> AlertRule:
    rule = session.get(AlertRule, rule_id)
    if rule is None:
        raise NotFound(f"no alert rule {rule_id}")
    return rule


def delete_rule(session: Session, rule_id: int) -> None:
    session.delete(get_rule(session, rule_id))  # its history goes with it (cascade)


def set_enabled(session: Session, rule_id: int, enabled: bool) -> AlertRule:
    rule = get_rule(session, rule_id)
    rule.enabled = enabled
    if not enabled:
        rule.state = "ok"  # a disabled rule ends its incident silently
    return rule


def history(session: Session, project_id: str | None = None,
            limit: int = 200) -> list[AlertEvent]:
    query = select(AlertEvent).order_by(AlertEvent.id.desc()).limit(limit)
    if project_id is not None:
        query = query.where(AlertEvent.project_id == project_id)
    return list(session.scalars(query))


def subscribe(session: Session, *, project_id: str, email: str,
              frequency: str = "weekly") -> ReportSubscription:
    """Subscribe one recipient to a project's report (again, if they had unsubscribed)."""
    _project(session, project_id)
    _choice(frequency, REPORT_FREQUENCIES, "frequency")
    address = normalize_email(email)
    existing = session.scalars(select(ReportSubscription).where(
        ReportSubscription.project_id == project_id, ReportSubscription.email == address,
        ReportSubscription.frequency == frequency)).first()
    if existing is not None:
        existing.unsubscribed_at = None
        return existing
    subscription = ReportSubscription(project_id=project_id, email=address, frequency=frequency)
    session.add(subscription)
    session.flush()
    return subscription


def list_subscriptions(session: Session, project_id: str | None = None,
                       active_only: bool = False) -> list[ReportSubscription]:
    query = select(ReportSubscription).order_by(ReportSubscription.project_id,
                                                ReportSubscription.id)
    if project_id is not None:
        query = query.where(ReportSubscription.project_id == project_id)
    if active_only:
        query = query.where(ReportSubscription.unsubscribed_at.is_(None))
    return list(session.scalars(query))


def unsubscribe(session: Session, subscription_id: int,
                at: datetime | None = None) -> ReportSubscription:
    subscription = session.get(ReportSubscription, subscription_id)
    if subscription is None:
        raise NotFound(f"no report subscription {subscription_id}")
    if subscription.unsubscribed_at is None:
        subscription.unsubscribed_at = at or utcnow()
    return subscription


def delete_subscription(session: Session, subscription_id: int) -> None:
    subscription = session.get(ReportSubscription, subscription_id)
    if subscription is None:
        raise NotFound(f"no report subscription {subscription_id}")
    session.delete(subscription)

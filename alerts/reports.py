"""Scheduled e-mail reports: a project's KPIs against the previous period, its top pages and
sources, and a chart of daily visitors (a matplotlib PNG, inline), once per period and
recipient.

The figures are the dashboards' own questions (queries/overview.py) over the report's
range, so a report and the Overview page of the same range show the same numbers. The previous
period is the range of equal length before it, as on the dashboards.
"""

from __future__ import annotations

import html
import io
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from accounts.db import session_scope
from accounts.models import Project, ReportSubscription
from alerts import tokens
from alerts.notify import DeliveryError, Mail, send_mail
from alerts.rules import list_subscriptions
from queries import overview
from queries.periods import DateRange, Granularity
from trackhouse.settings import get_settings

log = logging.getLogger(__name__)
CHART_CID = "visitors-chart@trackhouse"


@dataclass(frozen=True)
class Period:
    label: str  # 2026-W48 / 2026-11: what a subscription records as sent
    range: DateRange


def last_period(frequency: str, tz: str, now: datetime) -> Period:
    """The last complete ISO week (Monday to Sunday) or calendar month before ``now`` on the
    project's clock."""
    today = now.astimezone(ZoneInfo(tz)).date()
    if frequency == "weekly":
        start = today - timedelta(days=today.weekday() + 7)
        year, week, _ = start.isocalendar()
        return Period(f"{year}-W{week:02d}", DateRange(start, start + timedelta(days=6), tz))
    end = today.replace(day=1) - timedelta(days=1)
    return Period(f"{end:%Y-%m}", DateRange(end.replace(day=1), end, tz))


@dataclass
class Report:
    project_id: str
    project_name: str
    period: Period
    kpis: overview.Kpis
    previous: overview.Kpis
    top_pages: list[tuple[str, int]]  # (path, pageviews)
    top_sources: list[tuple[str, int]]  # (source, visitors)
    daily_visitors: list[tuple[date, int, int]]  # (day, visitors, previous period's)


def gather(project_id: str, project_name: str, period: Period) -> Report:
    date_range = period.range
    current, previous = overview.kpis(project_id, date_range)
    pages = overview.top_pages(project_id, date_range, limit=10)
    sources = overview.session_breakdown(project_id, date_range, "referrer_name", limit=10)
    now_series, before_series = overview.timeseries(project_id, date_range, Granularity.DAY)
    return Report(
        project_id, project_name, period, current, previous,
        [(str(p), int(v)) for p, v in zip(pages["path"], pages["pageviews"], strict=True)],
        [(str(s), int(v)) for s, v in zip(sources["value"], sources["visitors"], strict=True)],
        [(b.date(), int(v), int(p)) for b, v, p in zip(
            now_series["bucket"], now_series["visitors"], before_series["visitors"],
            strict=True)],
    )


def chart_png(report: Report) -> bytes:
    """Daily visitors of the period, the previous period dashed (no browser involved)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")  # no display; safe in any thread of a worker process
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 2.6), dpi=100)
    axes = figure.subplots()
    days = np.array([d for d, _, _ in report.daily_visitors], dtype="datetime64[D]")
    axes.plot(days, [v for _, v, _ in report.daily_visitors], color="#4c6ef5", linewidth=2,
              label="this period")
    axes.plot(days, [p for _, _, p in report.daily_visitors], color="#adb5bd", linewidth=1.5,
              linestyle="--", label="previous period")
    axes.set_ylabel("visitors")
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper left", frameon=False, fontsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


KPI_ROWS = (  # label, attribute, format
    ("Visitors", "visitors", "{:,.0f}"),
    ("Page views", "pageviews", "{:,.0f}"),
    ("Sessions", "sessions", "{:,.0f}"),
    ("Bounce rate", "bounce_rate", "{:.1%}"),
    ("Avg. session", "avg_session_duration_s", "{:,.0f} s"),
)


def _change(now: float, before: float) -> str:
    if not before:
        return "n/a"
    return f"{(now - before) / before * 100:+.1f}%"


def unsubscribe_url(subscription_id: int) -> str:
    settings = get_settings()
    base = (settings.public_collector_url
            or f"http://{settings.collector_host}:{settings.collector_port}").rstrip("/")
    return f"{base}/reports/unsubscribe?token={tokens.sign(subscription_id)}"


def compose(report: Report, to: str, unsubscribe: str) -> Mail:
    period = report.period
    title = (f"{report.project_name}: {period.range.start:%d %b} – {period.range.end:%d %b %Y} "
             f"({period.label})")
    kpi_lines = [(label, fmt.format(getattr(report.kpis, attr)),
                  fmt.format(getattr(report.previous, attr)),
                  _change(getattr(report.kpis, attr), getattr(report.previous, attr)))
                 for label, attr, fmt in KPI_ROWS]
    text = [f"Trackhouse report for {title}", "", "KPIs (this period / previous / change):"]
    text += [f"  {label}: {now} / {before} / {change}" for label, now, before, change in kpi_lines]
    text += ["", "Top pages (page views):"]
    text += [f"  {path}: {views}" for path, views in report.top_pages] or ["  (none)"]
    text += ["", "Top sources (visitors):"]
    text += [f"  {source}: {visitors}" for source, visitors in report.top_sources] or ["  (none)"]
    text += ["", f"Unsubscribe: {unsubscribe}"]
    e = html.escape
    rows = "".join(f"<tr><td>{e(label)}</td><td align='right'><b>{e(now)}</b></td>"
                   f"<td align='right'>{e(before)}</td><td align='right'>{e(change)}</td></tr>"
                   for label, now, before, change in kpi_lines)
    pages = "".join(f"<tr><td>{e(p)}</td><td align='right'>{v:,}</td></tr>"
                    for p, v in report.top_pages)
    sources = "".join(f"<tr><td>{e(s)}</td><td align='right'>{v:,}</td></tr>"
                      for s, v in report.top_sources)
    body = f"""<html><body style="font-family: sans-serif">
<h2>{e(title)}</h2>
<table cellpadding="4"><tr><th></th><th>this period</th><th>previous</th><th>change</th></tr>
{rows}</table>
<p><img src="cid:{CHART_CID}" alt="Daily visitors"></p>
<h3>Top pages</h3>
<table cellpadding="3"><tr><th>page</th><th>page views</th></tr>{pages}</table>
<h3>Top sources</h3>
<table cellpadding="3"><tr><th>source</th><th>visitors</th></tr>{sources}</table>
<p style="color:#868e96;font-size:small"><a href="{e(unsubscribe)}">Unsubscribe</a>
from this report.</p></body></html>"""
    return Mail(to=to, subject=f"Trackhouse {period.label} report: {report.project_name}",
                text="\n".join(text) + "\n", html=body, images={CHART_CID: chart_png(report)},
                headers={"List-Unsubscribe": f"<{unsubscribe}>",
                         "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})


@dataclass
class SendSummary:
    sent: list[int] = field(default_factory=list)
    skipped: int = 0
    failed: dict[int, str] = field(default_factory=dict)


def send_due_reports(now: datetime | None = None, *, force: bool = False) -> SendSummary:
    """Send every active subscription its report of the last complete period, unless that
    period was sent already (``force``: again). A failure is recorded and retried next run."""
    now = now or datetime.now(UTC)
    summary = SendSummary()
    with session_scope() as session:
        due = [(s.id, s.project_id, s.email, s.frequency, s.last_period)
               for s in list_subscriptions(session, active_only=True)]
        projects = {p.id: (p.name, p.timezone) for p in session.query(Project)}
    for subscription_id, project_id, email, frequency, sent_period in due:
        name, tz = projects.get(project_id, (project_id, "UTC"))
        period = last_period(frequency, tz, now)
        if sent_period == period.label and not force:
            summary.skipped += 1
            continue
        try:
            mail = compose(gather(project_id, name, period), email,
                           unsubscribe_url(subscription_id))
            send_mail(mail)
        except Exception as error:  # one report's failure never stops the others
            message = (str(error) if isinstance(error, DeliveryError)
                       else f"{type(error).__name__}: {error}")[:2000]
            log.warning("report %s to %s not sent: %s", subscription_id, email, message)
            summary.failed[subscription_id] = message
            outcome: dict[str, object] = {"last_error": message}
        else:
            summary.sent.append(subscription_id)
            outcome = {"last_error": "", "last_period": period.label, "last_sent_at": now}
        with session_scope() as session:
            subscription = session.get(ReportSubscription, subscription_id)
            if subscription is not None:
                for key, value in outcome.items():
                    setattr(subscription, key, value)
    return summary

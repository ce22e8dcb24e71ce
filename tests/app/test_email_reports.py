"""E-mail reports end to end: a weekly report of the dashboard fixture's shop, sent by the
Dagster job to a local SMTP server, its figures checked against the marts (and against the
fixture's own independent count); once per period; unsubscribed through its signed link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import dashboard_fixture as fd
import pytest
from alerts_support import Inbox, smtp_server
from dashboard_fixture import DashboardData


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    with smtp_server(monkeypatch) as received:
        yield received


@pytest.fixture
def subscription(dashboard_data: DashboardData) -> Iterator[int]:
    from accounts.db import session_scope
    from alerts.rules import delete_subscription, subscribe

    with session_scope() as session:
        subscription_id = subscribe(session, project_id=fd.SHOP, email="Boss@Example.test",
                                    frequency="weekly").id
    yield subscription_id
    with session_scope() as session:
        delete_subscription(session, subscription_id)


def text_figure(text: str, label: str) -> str:
    return re.search(rf"^  {label}: (\S+) /", text, re.MULTILINE).group(1)  # type: ignore[union-attr]


def mart_figures(period) -> dict:
    """The period's figures straight from the marts (not through the report's queries)."""
    from queries.base import range_params
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    db = get_settings().analytics_database
    params = range_params(fd.SHOP, period.range)
    where = "project_id = {project:String} and day between {start_day:Date} and {end_day:Date}"
    client = warehouse()
    try:
        visitors, pageviews = client.query(
            f"select groupBitmapMerge(visitors_state), sum(pageviews) "
            f"from {db}.daily_visitor_states where {where}", parameters=params).result_rows[0]
        sessions = client.query(f"select count() from {db}.sessions where {where}",
                                parameters=params).result_rows[0][0]
        pages = client.query(
            f"select path, sum(pageviews) as views from {db}.daily_page_states where {where} "
            "group by path order by views desc, path limit 10", parameters=params).result_rows
    finally:
        client.close()
    return {"visitors": visitors, "pageviews": pageviews, "sessions": sessions,
            "pages": [(str(p), int(v)) for p, v in pages]}


def test_a_weekly_report_arrives_with_the_marts_figures_once(
        dashboard_data: DashboardData, subscription: int, inbox: Inbox,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import DagsterInstance

    from alerts.reports import last_period
    from orchestration.alerts import email_reports_job

    now = dashboard_data.now
    period = last_period("weekly", fd.PROJECT_ZONES[fd.SHOP], now)
    # the job sends the reports due at the fixture's "now" (its events are relative to it)
    import alerts.reports

    real = alerts.reports.send_due_reports
    monkeypatch.setattr(alerts.reports, "send_due_reports", lambda: real(now))
    with DagsterInstance.ephemeral() as instance:
        assert email_reports_job.execute_in_process(instance=instance).success
    [mail] = inbox.messages
    assert mail["To"] == "boss@example.test"
    assert mail["Subject"] == f"Trackhouse {period.label} report: Dash shop"
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")

    marts = mart_figures(period)
    expected = fd.expected_kpis(dashboard_data.events, fd.SHOP, period.range.start,
                                period.range.end)
    assert marts["visitors"] == expected["visitors"] > 0  # the fixture's own count agrees
    for label, key in (("Visitors", "visitors"), ("Page views", "pageviews"),
                       ("Sessions", "sessions")):
        assert int(text_figure(text, label).replace(",", "")) == marts[key], label
    pages = re.search(r"Top pages \(page views\):\n((?:  .+\n)+)", text).group(1)  # type: ignore[union-attr]
    assert [tuple(line.strip().rsplit(": ", 1)) for line in pages.splitlines()] == [
        (path, str(views)) for path, views in marts["pages"]]

    [chart] = [part for part in mail.walk() if part.get_content_type() == "image/png"]
    assert chart.get_content().startswith(b"\x89PNG") and chart["Content-ID"]
    html = mail.get_body(("html",)).get_content()
    assert f"cid:{chart['Content-ID'].strip('<>')}" in html
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # once per period
    summary = real(now)
    assert (summary.sent, summary.skipped) == ([], 1) and len(inbox.messages) == 1


def test_the_unsubscribe_link_stops_the_reports(
        dashboard_data: DashboardData, subscription: int, inbox: Inbox) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from accounts.db import session_scope
    from accounts.models import ReportSubscription
    from alerts.reports import send_due_reports
    from collector.routers import reports

    now: datetime = dashboard_data.now
    send_due_reports(now)
    [mail] = inbox.messages
    link = re.search(r"<(http://\S+/reports/unsubscribe\?token=\S+)>",
                     mail["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
    path = link.split("://", 1)[1].split("/", 1)[1]
    app = FastAPI()
    app.include_router(reports.router)
    web = TestClient(app)

    assert web.get(f"/{path}").status_code == 200  # a confirmation page: a GET changes nothing
    token = path.split("token=", 1)[1]
    for bad in ("", "1", f"{subscription + 1}.{token.split('.')[1]}", token + "x", "1.é"):
        answer = web.post("/reports/unsubscribe", params={"token": bad})
        assert answer.status_code == 400 and "not valid" in answer.text, bad
    assert web.post("/reports/unsubscribe", params={"token": "9" * 5000}).status_code == 422
    assert web.get("/reports/unsubscribe", params={"token": "1.\x00'<script>"}).status_code == 400
    with session_scope() as session:
        assert session.get(ReportSubscription, subscription).unsubscribed_at is None

    answer = web.post(f"/{path}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "boss@example.test" in answer.text
    with session_scope() as session:
        assert session.get(ReportSubscription, subscription).unsubscribed_at is not None
    assert send_due_reports(now, force=True).sent == []
    assert len(inbox.messages) == 1

"""The Alerts page through Streamlit's AppTest: an admin creates a rule and a report
subscription and sees them; a viewer has no such page."""

from __future__ import annotations

from pathlib import Path

import dashboard_fixture as fd
import pytest
from dashboard_fixture import ADMIN, PASSWORD, VIEWER, DashboardData
from streamlit.testing.v1 import AppTest

MAIN = Path(__file__).resolve().parents[2] / "app" / "main.py"


def logged_in(email: str) -> AppTest:
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.run()
    at.text_input(key="login.email").input(email)
    at.text_input(key="login.password").input(PASSWORD)
    at.button[0].click().run()
    return at


def test_an_admin_manages_rules_and_reports(dashboard_data: DashboardData,
                                            forget_login_attempts: None) -> None:
    from accounts.db import session_scope
    from alerts.rules import delete_rule, delete_subscription, list_rules, list_subscriptions

    at = logged_in(ADMIN)
    at.switch_page("app_pages/alerts.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="alerts.rule.project").select(fd.BLOG)
    at.text_input(key="alerts.rule.name").input("blog signups")
    at.selectbox(key="alerts.rule.metric").select("event_count")
    at.text_input(key="alerts.rule.target").input("signup")
    at.text_input(key="alerts.rule.webhook").input("not a url")
    at.button(key="FormSubmitter:alerts.rule.create-Create rule").click().run()
    assert any("must be an http" in e.value for e in at.error), [e.value for e in at.error]

    at.text_input(key="alerts.rule.webhook").input("https://hooks.example.test/blog")
    at.button(key="FormSubmitter:alerts.rule.create-Create rule").click().run()
    at.selectbox(key="alerts.report.project").select(fd.BLOG)
    at.text_input(key="alerts.report.email").input("editor@example.test")
    at.button(key="FormSubmitter:alerts.report.create-Subscribe").click().run()
    assert not at.exception, [e.value for e in at.exception]
    with session_scope() as session:
        [rule] = list_rules(session, fd.BLOG)
        [subscription] = list_subscriptions(session, fd.BLOG)
        assert (rule.name, rule.metric, rule.target) == ("blog signups", "event_count", "signup")
        assert subscription.email == "editor@example.test"
        shown = at.dataframe[0].value
        assert list(shown["name"]) == ["blog signups"]
        delete_rule(session, rule.id)
        delete_subscription(session, subscription.id)


def test_a_viewer_has_no_alerts_page(dashboard_data: DashboardData,
                                     forget_login_attempts: None) -> None:
    at = logged_in(VIEWER)
    with pytest.raises(Exception):  # noqa: B017 - the page is not registered for a viewer
        at.switch_page("app_pages/alerts.py").run()

"""Alerts (admins only): alert rules per project, their history (what fired, what recovered,
whether each notification went out) and the e-mail report subscriptions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from accounts import service
from accounts.db import session_scope
from accounts.models import ALERT_CONDITIONS, ALERT_METRICS, ALERT_WINDOWS, REPORT_FREQUENCIES
from alerts import rules
from app.admin_actions import attempt
from app.auth import current_user

user = current_user()
if user is None or not user.is_admin:  # the navigation hides the page; this guards direct calls
    st.error("Only admins may open this page.")
    st.stop()

st.title("Alerts")


with session_scope() as session:
    project_ids = [p.id for p in service.list_projects(session)]
    rule_rows = [{"id": r.id, "project": r.project_id, "name": r.name, "metric": r.metric,
                  "target": r.target, "condition": r.condition, "threshold": r.threshold,
                  "window": r.time_window,
                  "notify": ", ".join(filter(None, [r.webhook_url, *r.emails])),
                  "state": r.state if r.enabled else "disabled", "last value": r.last_value,
                  "evaluated at": r.last_evaluated_at, "error": r.last_error}
                 for r in rules.list_rules(session)]
    history_rows = [{"at": e.at, "project": e.project_id, "rule": e.rule_id, "kind": e.kind,
                     "message": e.message, "delivered": e.delivered,
                     "deliveries": ", ".join(f"{k}: {v}" for k, v in e.deliveries.items()),
                     "attempts": e.attempts} for e in rules.history(session)]
    report_rows = [{"id": s.id, "project": s.project_id, "email": s.email,
                    "frequency": s.frequency, "last period": s.last_period,
                    "last sent": s.last_sent_at, "unsubscribed": s.unsubscribed_at,
                    "error": s.last_error} for s in rules.list_subscriptions(session)]

rules_tab, history_tab, reports_tab = st.tabs(["Rules", "History", "E-mail reports"])

with rules_tab:
    st.dataframe(pd.DataFrame(rule_rows), hide_index=True, width="stretch")
    if project_ids:
        # values stay after a refused submission, so the admin fixes one field, not all
        with st.form("alerts.rule.create"):
            st.markdown("**New rule** — drop/rise compare the last complete day or hour with "
                        "the same window a week earlier; above/below compare with a value.")
            project = st.selectbox("Project", project_ids, key="alerts.rule.project")
            name = st.text_input("Name", key="alerts.rule.name")
            metric = st.selectbox("Metric", ALERT_METRICS, key="alerts.rule.metric")
            target = st.text_input("Event name or funnel (event_count, funnel_conversion)",
                                   key="alerts.rule.target")
            condition = st.selectbox("Condition", ALERT_CONDITIONS, key="alerts.rule.condition")
            threshold = st.number_input("Threshold (% for drop/rise, a value otherwise)",
                                        min_value=0.0, value=30.0, key="alerts.rule.threshold")
            window = st.selectbox("Window", ALERT_WINDOWS, index=1, key="alerts.rule.window")
            webhook = st.text_input("Webhook URL", key="alerts.rule.webhook")
            emails = st.text_input("E-mail addresses (comma separated)", key="alerts.rule.emails")
            if st.form_submit_button("Create rule"):
                attempt(lambda s: rules.create_rule(
                    s, project_id=project, name=name, metric=metric, target=target,
                    condition=condition, threshold=threshold, window=window,
                    webhook_url=webhook, emails=[e for e in emails.split(",") if e.strip()]),
                    "alert rule created")
    if rule_rows:
        with st.form("alerts.rule.change"):
            rule_id = st.selectbox("Rule", [r["id"] for r in rule_rows], key="alerts.rule.pick")
            enable_col, disable_col, delete_col = st.columns(3)
            if enable_col.form_submit_button("Enable"):
                attempt(lambda s: rules.set_enabled(s, rule_id, True), f"rule {rule_id} enabled")
            if disable_col.form_submit_button("Disable"):
                attempt(lambda s: rules.set_enabled(s, rule_id, False),
                        f"rule {rule_id} disabled")
            if delete_col.form_submit_button("Delete"):
                attempt(lambda s: rules.delete_rule(s, rule_id), f"rule {rule_id} deleted")

with history_tab:
    if history_rows:
        st.dataframe(pd.DataFrame(history_rows), hide_index=True, width="stretch")
    else:
        st.info("No alert has fired yet.")

with reports_tab:
    st.dataframe(pd.DataFrame(report_rows), hide_index=True, width="stretch")
    if project_ids:
        with st.form("alerts.report.create", clear_on_submit=True):
            st.markdown("**Subscribe** — KPIs against the previous period, top pages and "
                        "sources, a chart; each e-mail carries an unsubscribe link.")
            project = st.selectbox("Project", project_ids, key="alerts.report.project")
            email = st.text_input("Recipient", key="alerts.report.email")
            frequency = st.selectbox("Frequency", REPORT_FREQUENCIES, key="alerts.report.freq")
            if st.form_submit_button("Subscribe"):
                attempt(lambda s: rules.subscribe(s, project_id=project, email=email,
                                                  frequency=frequency),
                        f"{email} subscribed")
    if report_rows:
        with st.form("alerts.report.change"):
            subscription_id = st.selectbox("Subscription", [r["id"] for r in report_rows],
                                           key="alerts.report.pick")
            stop_col, delete_col = st.columns(2)
            if stop_col.form_submit_button("Unsubscribe"):
                attempt(lambda s: rules.unsubscribe(s, subscription_id),
                        f"subscription {subscription_id} stopped")
            if delete_col.form_submit_button("Delete"):
                attempt(lambda s: rules.delete_subscription(s, subscription_id),
                        f"subscription {subscription_id} deleted")

"""Alerts on a project's figures and scheduled e-mail reports (issue 18, items 3 and 4).

Rules, their history and report subscriptions live in the metadata database
(accounts/models.py); figures come from dbt relations only (queries/alerts.py and the
overview questions); Dagster runs the evaluation and the reports (orchestration/alerts.py).
"""

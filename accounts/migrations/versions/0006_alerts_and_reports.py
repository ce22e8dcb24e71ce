"""Alert rules, their history, and e-mail report subscriptions (issue 18, items 3 and 4).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("condition", sa.String(8), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("time_window", sa.String(8), nullable=False),
        sa.Column("webhook_url", sa.String(2000), nullable=False),
        sa.Column("emails", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("last_evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("metric in ('visitors', 'pageviews', 'event_count', "
                           "'funnel_conversion', 'pipeline_stale')",
                           name=op.f("ck_alert_rules_metric")),
        sa.CheckConstraint("condition in ('drop', 'rise', 'above', 'below')",
                           name=op.f("ck_alert_rules_condition")),
        sa.CheckConstraint("time_window in ('hour', 'day')",
                           name=op.f("ck_alert_rules_time_window")),
        sa.CheckConstraint("state in ('ok', 'firing')", name=op.f("ck_alert_rules_state")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name=op.f("fk_alert_rules_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
    )
    op.create_index(op.f("ix_alert_rules_project_id"), "alert_rules", ["project_id"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("message", sa.String(2000), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("deliveries", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.CheckConstraint("kind in ('firing', 'recovered')", name=op.f("ck_alert_events_kind")),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"], ondelete="CASCADE",
                                name=op.f("fk_alert_events_rule_id_alert_rules")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index(op.f("ix_alert_events_rule_id"), "alert_events", ["rule_id"])
    op.create_index(op.f("ix_alert_events_project_id"), "alert_events", ["project_id"])
    op.create_table(
        "report_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("frequency", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_period", sa.String(16), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(2000), nullable=False),
        sa.CheckConstraint("frequency in ('weekly', 'monthly')",
                           name=op.f("ck_report_subscriptions_frequency")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name=op.f("fk_report_subscriptions_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_subscriptions")),
    )
    op.create_index(op.f("ix_report_subscriptions_project_id"), "report_subscriptions",
                    ["project_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_report_subscriptions_project_id"), table_name="report_subscriptions")
    op.drop_table("report_subscriptions")
    op.drop_index(op.f("ix_alert_events_project_id"), table_name="alert_events")
    op.drop_index(op.f("ix_alert_events_rule_id"), table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index(op.f("ix_alert_rules_project_id"), table_name="alert_rules")
    op.drop_table("alert_rules")

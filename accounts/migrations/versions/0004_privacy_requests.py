"""Audit records of erasure and export requests (``trackhouse privacy``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

(0003 is the login-attempts revision of a parallel change; the chain is fixed at merge.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("subject_kind", sa.String(8), nullable=False),
        sa.Column("subject_fingerprint", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(320), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("action in ('erase', 'export')",
                           name=op.f("ck_privacy_requests_action")),
        sa.CheckConstraint("subject_kind in ('profile', 'device')",
                           name=op.f("ck_privacy_requests_subject_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index(op.f("ix_privacy_requests_project_id"), "privacy_requests", ["project_id"])
    op.create_index(op.f("ix_privacy_requests_subject_fingerprint"), "privacy_requests",
                    ["subject_fingerprint"])
    # per-project retention of raw events, in days; NULL keeps them forever
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("retention_days")
    op.drop_index(op.f("ix_privacy_requests_subject_fingerprint"), table_name="privacy_requests")
    op.drop_index(op.f("ix_privacy_requests_project_id"), table_name="privacy_requests")
    op.drop_table("privacy_requests")

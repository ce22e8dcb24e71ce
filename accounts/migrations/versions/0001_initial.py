"""Users, projects, API clients and project access.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Written against plain SQLAlchemy types (not the model classes) so that later changes to the
models never change what this migration does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("allowed_origins", sa.JSON(), nullable=False),
        sa.Column("plausible_domain", sa.String(255), nullable=True),
        sa.Column("umami_website_id", sa.String(36), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("plausible_domain", name=op.f("uq_projects_plausible_domain")),
        sa.UniqueConstraint("umami_website_id", name=op.f("uq_projects_umami_website_id")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "clients",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("secret_hash", sa.String(200), nullable=True),
        sa.Column("allowed_origins", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
        sa.CheckConstraint("type in ('write', 'read', 'root')", name=op.f("ck_clients_type")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_clients_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
    )
    op.create_index(op.f("ix_clients_project_id"), "clients", ["project_id"])
    op.create_table(
        "project_access",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_access_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_project_access_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "project_id", name=op.f("pk_project_access")),
    )
    op.create_index(op.f("ix_project_access_project_id"), "project_access", ["project_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_project_access_project_id"), table_name="project_access")
    op.drop_table("project_access")
    op.drop_index(op.f("ix_clients_project_id"), table_name="clients")
    op.drop_table("clients")
    op.drop_table("users")
    op.drop_table("projects")

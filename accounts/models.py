"""Tables of the metadata database (SQLAlchemy 2 typed declarative).

Times are stored as UTC and always come back timezone-aware, on SQLite too (which keeps no
offset). Lists of origins are JSON columns so the same schema works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

CLIENT_TYPES = ("write", "read", "root")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned with ``tzinfo=UTC`` on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware UTC time")
        value = value.astimezone(UTC)
        # SQLite has no offset type: store the UTC wall time.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Named constraints so that later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime, list[str]: JSON}


class User(Base):
    """A person who logs in to the dashboards; admins see every project."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, email={self.email!r}, is_admin={self.is_admin!r})"


class Project(Base):
    """A tracked site or app; its id (a URL-safe slug) is the ``project_id`` of every event."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(255), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Origins browsers may send events from, for clients that have none of their own.
    allowed_origins: Mapped[list[str]] = mapped_column(default=list)
    # The Plausible tracker's ``d`` and the Umami tracker's ``website`` select the project.
    plausible_domain: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    umami_website_id: Mapped[str | None] = mapped_column(String(36), unique=True, default=None)
    # Raw events older than this many days are deleted (lifecycle/retention.py); None: kept.
    retention_days: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    clients: Mapped[list[Client]] = relationship(
        back_populates="project", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Project(id={self.id!r}, name={self.name!r}, timezone={self.timezone!r})"


class Client(Base):
    """An API client of a project: ``write`` ingests, ``read`` reads, ``root`` does both.

    Only the argon2 hash of the secret is stored; a client without a secret is a browser
    client, authenticated by its ``Origin``.
    """

    __tablename__ = "clients"
    __table_args__ = (
        CheckConstraint("type in ('write', 'read', 'root')", name="type"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    type: Mapped[str] = mapped_column(String(8), default="write")
    secret_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    # Empty: the project's allowed origins apply.
    allowed_origins: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    project: Mapped[Project] = relationship(back_populates="clients")

    @property
    def has_secret(self) -> bool:
        return self.secret_hash is not None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def __repr__(self) -> str:
        # Never the secret hash: reprs end up in logs.
        return (
            f"Client(id={self.id!r}, project_id={self.project_id!r}, type={self.type!r}, "
            f"has_secret={self.has_secret!r}, revoked={self.is_revoked!r})"
        )


class ProjectAccess(Base):
    """Which projects a non-admin user may see."""

    __tablename__ = "project_access"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class LoginSession(Base):
    """A dashboard login that survives reloads and new tabs: the browser keeps a random token
    in a cookie; only its sha256 is stored. Valid until ``expires_at`` unless revoked (logout);
    deleting the user deletes its login sessions."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:
        # Never the token hash: reprs end up in logs.
        return (f"LoginSession(id={self.id!r}, user_id={self.user_id!r}, "
                f"expires_at={self.expires_at!r}, revoked={self.revoked_at is not None!r})")


LOGIN_OUTCOMES = ("pending", "succeeded", "failed", "refused")


class LoginAttempt(Base):
    """One try at the dashboard login: when, for which e-mail (as typed, known or not), from
    which IP and user agent, and how it ended. ``pending`` while the password is checked (it
    counts as a failure meanwhile, so parallel guesses wait their turn); ``refused`` when the
    delay or lockout stopped it before any check."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        CheckConstraint("outcome in ('pending', 'succeeded', 'failed', 'refused')",
                        name="outcome"),
        Index("ix_login_attempts_email_at", "email", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    email: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(500), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="pending")

    def __repr__(self) -> str:
        return (f"LoginAttempt(id={self.id!r}, at={self.at!r}, email={self.email!r}, "
                f"ip={self.ip!r}, outcome={self.outcome!r})")


class PrivacyRequest(Base):
    """An erasure or export of one profile's or device's data (``trackhouse privacy``, the
    Admin page): who asked, when, and what it touched. The subject is kept only as a sha256
    fingerprint (``lifecycle.privacy.Subject.fingerprint``), so an erased id is stored nowhere,
    while a later request for the same id can still be matched to this record."""

    __tablename__ = "privacy_requests"
    __table_args__ = (
        CheckConstraint("action in ('erase', 'export')", name="action"),
        CheckConstraint("subject_kind in ('profile', 'device')", name="subject_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(8))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    subject_kind: Mapped[str] = mapped_column(String(8))
    subject_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    # who asked: the admin's e-mail in the app, "cli:<os user>" on the command line
    requested_by: Mapped[str] = mapped_column(String(320), default="")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    # per table: rows deleted or exported; for an erasure also what was recomputed
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ShareLink(Base):
    """A public read-only link to one project's overview (``accounts.shares``). The browser
    brings a random 32-byte token in the URL; only its sha256 is stored. An optional password
    (argon2, like users'), an optional expiry, revocable; deleting the project deletes it."""

    __tablename__ = "share_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    # who created it: the admin's e-mail in the app, "cli:<os user>" on the command line
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_opened_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    def __repr__(self) -> str:
        # Never the token or password hash: reprs end up in logs.
        return (f"ShareLink(id={self.id!r}, project_id={self.project_id!r}, "
                f"has_password={self.has_password!r}, expires_at={self.expires_at!r}, "
                f"revoked={self.revoked_at is not None!r})")
# --- alerts and e-mail reports (alerts/) ---------------------------------------------------

ALERT_METRICS = ("visitors", "pageviews", "event_count", "funnel_conversion", "pipeline_stale")
ALERT_CONDITIONS = ("drop", "rise", "above", "below")
ALERT_WINDOWS = ("hour", "day")
ALERT_STATES = ("ok", "firing")
REPORT_FREQUENCIES = ("weekly", "monthly")


class AlertRule(Base):
    """A condition on one figure of a project, evaluated after every marts build: ``drop`` /
    ``rise`` by ``threshold`` % against the same window a week earlier, or ``above`` /
    ``below`` ``threshold``. ``state`` is where its incident stands (``firing`` notifies once,
    back to ``ok`` sends "recovered" once)."""

    __tablename__ = "alert_rules"
    __table_args__ = (
        CheckConstraint("metric in ('visitors', 'pageviews', 'event_count', "
                        "'funnel_conversion', 'pipeline_stale')", name="metric"),
        CheckConstraint("condition in ('drop', 'rise', 'above', 'below')", name="condition"),
        CheckConstraint("time_window in ('hour', 'day')", name="time_window"),
        CheckConstraint("state in ('ok', 'firing')", name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    metric: Mapped[str] = mapped_column(String(32))
    # the event name (event_count) or the funnel (funnel_conversion); empty otherwise
    target: Mapped[str] = mapped_column(String(200), default="")
    condition: Mapped[str] = mapped_column(String(8), default="drop")
    threshold: Mapped[float] = mapped_column(Float, default=0.0)
    time_window: Mapped[str] = mapped_column(String(8), default="day")
    webhook_url: Mapped[str] = mapped_column(String(2000), default="")
    emails: Mapped[list[str]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(8), default="ok")
    last_value: Mapped[float | None] = mapped_column(Float, default=None)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(default=None)
    # why the last evaluation found no figure (warehouse down, mart missing); empty when it did
    last_error: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return (f"AlertRule(id={self.id!r}, project_id={self.project_id!r}, "
                f"metric={self.metric!r}, condition={self.condition!r}, state={self.state!r})")


class AlertEvent(Base):
    """One transition of a rule (``firing`` or ``recovered``) and its notification: per
    channel ``sent`` or the last error; undelivered channels are retried at the next
    evaluation."""

    __tablename__ = "alert_events"
    __table_args__ = (
        CheckConstraint("kind in ('firing', 'recovered')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("alert_rules.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(2000), default="")
    value: Mapped[float | None] = mapped_column(Float, default=None)
    baseline: Mapped[float | None] = mapped_column(Float, default=None)
    # channel ("webhook", "email:<address>") -> "sent" or the last error
    deliveries: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)


class ReportSubscription(Base):
    """A weekly or monthly e-mail report of one project to one recipient; ``last_period`` is
    the last period sent (``2026-W48``, ``2026-11``), so a report goes out once per period."""

    __tablename__ = "report_subscriptions"
    __table_args__ = (
        CheckConstraint("frequency in ('weekly', 'monthly')", name="frequency"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    frequency: Mapped[str] = mapped_column(String(8), default="weekly")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(default=None)
    last_period: Mapped[str] = mapped_column(String(16), default="")
    last_sent_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(String(2000), default="")
class ImportCheckpoint(Base):
    """How far one history import (``trackhouse import``) got: the source position after the
    last chunk the collector acknowledged, and the running counts. Keyed by the project and
    the source (``importers.engine``); committed only after an acknowledgement, so a killed
    import resumes at the first chunk not known to be stored."""

    __tablename__ = "import_checkpoints"
    __table_args__ = (
        Index("ix_import_checkpoints_project_source", "project_id", "source_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # umami | ga4 | openpanel
    # what was imported: a hash of the database and website, or of the files' names and sizes
    source_key: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    # the source's own position (JSON text) after the last acknowledged chunk; None: start
    position: Mapped[str | None] = mapped_column(String(2000), default=None)
    read: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    # refusal reason -> count, over every run
    refusals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ProjectMirror(Base):
    """A project change the warehouse's ``projects`` table has not taken yet: an outbox row
    written in the change's own transaction (one per project, the latest change), drained by
    ``lifecycle.project_mirror.sync_projects`` once the warehouse took it (ADR 0027)."""

    __tablename__ = "project_mirror_outbox"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    # the change's time: ReplacingMergeTree(updated_at, is_deleted) keeps the newest row
    updated_at: Mapped[datetime] = mapped_column()
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)


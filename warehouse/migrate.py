"""Versioned, idempotent migrations of the raw schema.

Migrations are the numbered ``.sql`` files beside this module (``0001_name.sql``). Each runs
once; the versions applied are recorded in ``<raw_database>.schema_migrations``. Every
statement is written to be safe to repeat (``if not exists``), so a migration interrupted
half-way is simply run again. ``{raw_database}`` in a file is replaced by the setting.

With ``TRACKHOUSE_CLICKHOUSE_CLUSTER`` set, each statement runs in its cluster form
(``warehouse/cluster.py``: ON CLUSTER, replicated local tables, Distributed tables).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

from trackhouse.settings import Settings, get_settings
from warehouse.client import warehouse
from warehouse.cluster import ClusterSchema, schema_migrations_ddl

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self, settings: Settings) -> list[str]:
        text = self.path.read_text().replace("{raw_database}", settings.raw_database)
        statements = split_statements(text)
        if not settings.clickhouse_cluster:
            return statements
        schema = ClusterSchema(settings.clickhouse_cluster, settings.raw_database)
        return [form for statement in statements for form in schema.statements(statement)]


def split_statements(sql: str) -> list[str]:
    """Split a migration file into statements: a statement ends with ';' at the end of a line.

    Comment lines before a statement are dropped, and a comment line never ends one (a real
    server refuses a comment-only query as empty); the files never put ';' at a line end inside
    a string.
    """
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.strip().startswith("--") and not current:
            continue
        current.append(line)
        if line.rstrip().endswith(";") and not line.strip().startswith("--"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail and not all(s.strip().startswith("--") for s in current if s.strip()):
        statements.append(tail)
    return statements


def discover() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise ValueError(f"two migrations share a version in {MIGRATIONS_DIR}")
    return found


def migrations_table_ddl(settings: Settings) -> list[str]:
    """The raw database and its ``schema_migrations`` (cluster-wide with a cluster)."""
    db = settings.raw_database
    if settings.clickhouse_cluster:
        return schema_migrations_ddl(settings.clickhouse_cluster, db)
    return [
        f"create database if not exists {db}",
        f"""create table if not exists {db}.schema_migrations
        (version UInt32, name String, applied_at DateTime64(3, 'UTC') default now64(3))
        engine = ReplacingMergeTree order by version""",
    ]


def all_statements(settings: Settings) -> list[tuple[str, str]]:
    """Every statement ``migrate`` runs on an empty warehouse, with the migration it belongs to
    (``trackhouse migrate-sql`` prints them for review before a cluster is migrated)."""
    plan = [("schema_migrations", s) for s in migrations_table_ddl(settings)]
    for migration in discover():
        label = f"{migration.version:04d}_{migration.name}"
        plan += [(label, s) for s in migration.statements(settings)]
    return plan


def applied_versions(client: Client, settings: Settings) -> set[int]:
    db = settings.raw_database
    for statement in migrations_table_ddl(settings):
        client.command(statement)
    if settings.clickhouse_cluster:
        # this node's replica holds every version another node recorded before it reads them
        client.command(f"system sync replica {db}.schema_migrations")
    rows = client.query(f"select version from {db}.schema_migrations final").result_rows
    return {int(r[0]) for r in rows}


def pending(client: Client, settings: Settings) -> list[Migration]:
    """The migrations not yet applied, read without changing anything (a service's start-up
    check: only ``migrate`` creates the raw database)."""
    exists = client.query(
        "select count() from system.tables where database = {db:String} "
        "and name = 'schema_migrations'", parameters={"db": settings.raw_database}
    ).result_rows[0][0]
    if not exists:
        return discover()
    rows = client.query(
        f"select version from {settings.raw_database}.schema_migrations final").result_rows
    done = {int(r[0]) for r in rows}
    return [m for m in discover() if m.version not in done]


class SchemaBehind(RuntimeError):
    """The raw tables are older than this code; ``trackhouse migrate`` brings them up."""

    @classmethod
    def of(cls, settings: Settings, behind: list[Migration]) -> SchemaBehind:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in behind)
        return cls(f"the raw tables in '{settings.raw_database}' lack migration(s) {names}: "
                   "run `trackhouse migrate`")


def schema_behind(settings: Settings) -> SchemaBehind | None:
    """What the raw tables lack, as the error a service reports, or None when they are
    current; raises when the warehouse does not answer (within seconds, not minutes)."""
    client = warehouse(settings, connect_timeout=2, send_receive_timeout=10)
    try:
        behind = pending(client, settings)
    finally:
        client.close()
    return SchemaBehind.of(settings, behind) if behind else None


def wait_for_schema(settings: Settings, timeout_s: float, every_s: float = 2.0) -> None:
    """Return once the raw schema is current; a service calls it before it serves.

    Waits while the warehouse does not answer (a service has nothing to do until it does), and
    up to ``timeout_s`` while a migration is pending (``trackhouse up`` migrates once the
    warehouse answers, after its services started); then raises ``SchemaBehind`` naming the
    command to run.
    """
    behind_since: float | None = None
    logged = 0.0
    while True:
        try:
            behind = schema_behind(settings)
        except Exception as error:  # down or starting
            behind_since, reason = None, f"the warehouse does not answer ({str(error)[:200]})"
        else:
            if behind is None:
                return
            reason = str(behind)
            now = time.monotonic()
            behind_since = behind_since or now
            if now - behind_since >= timeout_s:
                raise behind
        if time.monotonic() - logged >= 10:
            log.warning("waiting: %s", reason)
            logged = time.monotonic()
        time.sleep(every_s)


def migrate(client: Client | None = None, settings: Settings | None = None) -> list[Migration]:
    """Apply every migration not yet recorded; return the ones applied now."""
    settings = settings or get_settings()
    client = client or warehouse(settings)
    done = applied_versions(client, settings)
    applied = []
    for migration in discover():
        if migration.version in done:
            continue
        log.info("applying migration %04d_%s", migration.version, migration.name)
        for statement in migration.statements(settings):
            client.command(statement)
        client.insert(
            f"{settings.raw_database}.schema_migrations",
            [[migration.version, migration.name]],
            column_names=["version", "name"],
        )
        applied.append(migration)
    return applied

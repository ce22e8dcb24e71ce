"""``trackhouse migrate`` applies the raw schema once, records it, and is safe to repeat."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from warehouse.migrate import discover


@pytest.fixture
def raw_database(ch: Client) -> Iterator[str]:
    name = f"raw_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        ch.command(f"DROP DATABASE IF EXISTS {name}")


def trackhouse_migrate(raw_database: str) -> str:
    env = {**os.environ, "TRACKHOUSE_RAW_DATABASE": raw_database}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "trackhouse"), "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_migrate_twice_records_versions(ch: Client, raw_database: str) -> None:
    migrations = discover()
    first = trackhouse_migrate(raw_database)
    for migration in migrations:
        assert f"applied {migration.version:04d}_{migration.name}" in first
    tables = set(ch.query(f"SHOW TABLES FROM {raw_database}").result_columns[0])
    assert {"events", "profiles", "projects", "schema_migrations"} <= tables

    second = trackhouse_migrate(raw_database)
    assert "up to date" in second
    recorded = ch.query(
        f"SELECT version, name, count() FROM {raw_database}.schema_migrations "
        "GROUP BY version, name ORDER BY version"
    ).result_rows
    assert recorded == [(m.version, m.name, 1) for m in migrations]


def test_upgrade_from_the_first_schema_keeps_the_rows(ch: Client, raw_database: str) -> None:
    """A warehouse migrated to 0001 with events in it: 0002 turns the dimensions into plain
    String and every value stays as it was."""
    from trackhouse.settings import get_settings
    from warehouse.migrate import applied_versions

    settings = get_settings().model_copy(update={"raw_database": raw_database})
    first = discover()[0]
    applied_versions(ch, settings)  # the database and its migrations table
    for statement in first.statements(settings):
        ch.command(statement)
    ch.insert(f"{raw_database}.schema_migrations", [[first.version, first.name]],
              column_names=["version", "name"])
    ch.command(f"insert into {raw_database}.events (id, project_id, name, created_at, "
               "received_at, country, browser, utm_source) values (generateUUIDv4(), 'p', "
               "'screen_view', now64(3), now64(3), 'GB', 'Firefox', 'news')")
    assert "applied 0002_plain_text_dimensions" in trackhouse_migrate(raw_database)
    rows = ch.query(f"select country, browser, utm_source, toTypeName(country), "
                    f"toTypeName(project_id) from {raw_database}.events").result_rows
    assert rows == [("GB", "Firefox", "news", "String", "LowCardinality(String)")]

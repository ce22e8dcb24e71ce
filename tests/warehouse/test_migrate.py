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

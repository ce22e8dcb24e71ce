"""Start-up checks: a service never serves on schemas older than its code. The collector
migrates the metadata it reads; the worker waits for the raw tables' migrations, then exits
naming the command to run."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy
from collector_support import PROJECT_ROOT


def test_collector_on_an_unmigrated_metadata_database_migrates_it(
    make_api: Any, tmp_path: Path, monkeypatch: Any,
) -> None:
    from trackhouse.settings import get_settings

    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    monkeypatch.setenv("TRACKHOUSE_DATABASE_URL", url)  # as an operator would set it
    get_settings.cache_clear()
    try:
        api = make_api()
        domain = f"{uuid.uuid4().hex[:8]}.example"
        answer = api.post("/api/event", json={"n": "pageview", "u": f"https://{domain}/",
                                              "d": domain},
                          headers={"content-type": "text/plain", "user-agent": "Mozilla/5.0"})
        assert answer.status_code < 500, answer.text
        assert domain in answer.json()["error"]  # an unknown domain, said so
        tables = sqlalchemy.inspect(sqlalchemy.create_engine(url)).get_table_names()
        assert {"projects", "clients", "users"} <= set(tables), tables
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def _worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "trackhouse"), "worker", *args],
                          env={**os.environ, **env}, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_worker_refuses_raw_tables_older_than_its_code(redis_server: Any, migrated: None) -> None:
    from trackhouse.settings import get_settings
    from warehouse.migrate import migrate

    database = f"unmigrated_{uuid.uuid4().hex[:8]}"
    env = {"TRACKHOUSE_RAW_DATABASE": database, "TRACKHOUSE_WORKER_SCHEMA_WAIT_S": "1"}
    refused = _worker(env, "--burst")
    assert refused.returncode != 0
    assert "run `trackhouse migrate`" in refused.stderr and "0001_" in refused.stderr

    settings = get_settings().model_copy(update={"raw_database": database})
    try:
        assert migrate(settings=settings)
        done = _worker(env, "--burst")
        assert done.returncode == 0, done.stderr
    finally:
        from warehouse.client import warehouse

        warehouse(settings).command(f"drop database if exists {database}")

"""dagster.yaml, as `trackhouse dagster` installs it: SQLite by default, PostgreSQL by setting."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, asset, materialize

from trackhouse.settings import Settings

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@asset
def heartbeat() -> int:
    return 1


def _open_instance(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> DagsterInstance:
    from orchestration.instance import dagster_process_env, prepare_dagster_home

    home = prepare_dagster_home(settings)
    for name, value in dagster_process_env(settings).items():
        monkeypatch.setenv(name, value)
    assert Path(os.environ["DAGSTER_HOME"]) == home
    return DagsterInstance.from_config(str(home))


def _assert_instance_settings(instance: DagsterInstance) -> None:
    """The parts of dagster.yaml that keep dbt runs apart and telemetry off."""
    coordinator_config = instance.get_concurrency_config().run_queue_config
    assert coordinator_config is not None
    assert [(limit["key"], limit["limit"]) for limit in coordinator_config.tag_concurrency_limits] \
        == [("trackhouse/dbt", 1)]
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert instance.run_coordinator.dequeue_interval_seconds == 1  # type: ignore[attr-defined]
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert instance.get_settings("telemetry") == {"enabled": False}


def test_sqlite_storage_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with _open_instance(settings, monkeypatch) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        _assert_instance_settings(instance)
        result = materialize([heartbeat], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
    assert (tmp_path / "data" / "dagster" / "dagster.yaml").is_file()
    assert list((tmp_path / "data" / "dagster").rglob("runs.db")), "run storage is not SQLite"


@pytest.fixture
def throwaway_postgres_db() -> Iterator[str]:
    name = f"trackhouse_dagster_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def test_postgres_storage_by_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, throwaway_postgres_db: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data", dagster_postgres_url=throwaway_postgres_db)
    with _open_instance(settings, monkeypatch) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        _assert_instance_settings(instance)
        result = materialize([heartbeat], instance=instance)
        assert result.success
    # the run is in PostgreSQL, and the URL (a secret in general) is not written to disk
    with psycopg.connect(throwaway_postgres_db) as conn:
        runs = conn.execute("select run_id from runs").fetchall()
    assert (result.run_id,) in runs
    written = (tmp_path / "data" / "dagster" / "dagster.yaml").read_text()
    assert throwaway_postgres_db not in written
    assert "TRACKHOUSE_DAGSTER_POSTGRES_URL" in written

"""Backup and restore: a round trip from one installation into a fresh one.

The source installation has the model tests' scenario in its raw tables, marts built by dbt, a
metadata database with a project, a user and an API client, and a Dagster instance with a run.
Its backup is restored into a second installation (a new data directory, new database names
on the same warehouse). Every table has its rows back, the marts their figures, the user can
log in, the client's secret still verifies, Dagster knows the run, and dbt carries on.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lifecycle_support import snapshot
from models_scenario import ZONES, build

from lifecycle.backup import BackupError, backup, restore
from lifecycle.tables import data_tables

PASSWORD = "correct horse battery staple 7"


def _row_counts(client: Any, settings: Any) -> dict[tuple[str, str], int]:
    from lifecycle.backup import _roles

    role_of = {database: role for role, database in _roles(settings).items()}
    return {(role_of[t.database], t.name): int(client.query(
        f"select count() from {t.ref}").result_rows[0][0])
        for t in data_tables(client, settings)}


@pytest.fixture(scope="module")
def round_trip(models_warehouse, tmp_path_factory) -> Iterator[dict[str, Any]]:
    from dagster import DagsterInstance, job, op

    from accounts.db import session_scope, upgrade
    from accounts.service import create_client, create_project, create_user
    from orchestration.instance import prepare_dagster_home
    from trackhouse.dbt import run_dbt

    models = models_warehouse
    root = tmp_path_factory.mktemp("backup")
    source = models.settings.model_copy(update={"data_dir": root / "source"})
    suffix = uuid.uuid4().hex[:10]
    fresh = models.settings.model_copy(update={
        "data_dir": root / "fresh", "raw_database": f"raw_{suffix}",
        "analytics_database": f"analytics_{suffix}"})

    scenario = build()
    models.insert_projects(ZONES)
    models.insert_events(scenario.events)
    models.insert_profile_calls(scenario.profile_calls)
    models.dbt("seed")
    models.dbt("run")

    upgrade(source)
    with session_scope(source) as session:
        create_project(session, name="Shop", project_id="shop", mirror=False)
        create_user(session, email="ada@example.com", password=PASSWORD, is_admin=True)
        api_client, secret = create_client(session, project_id="shop", type="write")
        client_id = api_client.id

    @op
    def noop() -> None:
        pass

    @job(name="backup_probe")
    def probe() -> None:
        noop()

    def instance_at(home: Path) -> DagsterInstance:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DAGSTER_HOME", str(home))  # dagster.yaml reads its base_dir from it
            return DagsterInstance.from_config(str(home))

    instance = instance_at(prepare_dagster_home(source))
    run_id = probe.execute_in_process(instance=instance).run_id
    instance.dispose()

    client = models.client
    target = root / "the-backup"
    # slices of 64 KB: the larger tables are split into several files, as at scale
    mp = pytest.MonkeyPatch()
    mp.setattr("lifecycle.backup.SLICE_BYTES", 64 << 10)
    messages: list[str] = []
    try:
        manifest = backup(target, settings=source, client=client, progress=messages.append)
    finally:
        mp.undo()
    try:
        result = restore(target, settings=fresh, client=client, progress=messages.append)
        from warehouse.migrate import migrate

        migrate(client, fresh)
        restored_instance = instance_at(fresh.effective_dagster_home)
        restored_runs = [r.run_id for r in restored_instance.get_runs()]
        restored_instance.dispose()
        recorded = {
            "manifest": manifest, "result": result, "messages": messages, "target": target,
            "counts": _row_counts(client, source), "restored_counts": _row_counts(client, fresh),
            "marts": snapshot(client, source), "restored_marts": snapshot(client, fresh),
            "source": source, "fresh": fresh, "client_id": client_id, "secret": secret,
            "run_id": run_id, "restored_runs": restored_runs,
        }
        # dbt carries on in the restored installation: an incremental run changes nothing
        dbt_result = run_dbt(["run", "--target-path", str(root / "target")], fresh)
        recorded["dbt_ok"] = dbt_result.success
        recorded["after_dbt"] = snapshot(client, fresh)
        yield recorded
    finally:
        for database in (fresh.raw_database, *(f"{fresh.analytics_database}{layer}"
                                               for layer in ("", "_staging", "_intermediate"))):
            client.command(f"drop database if exists {database} sync")


def test_every_table_has_its_rows_back(round_trip: dict[str, Any]) -> None:
    counts = round_trip["counts"]
    assert counts[("raw", "events")] > 0 and counts[("marts", "sessions")] > 0
    assert round_trip["restored_counts"] == counts
    assert round_trip["result"]["rows"] == sum(
        t["rows"] for t in round_trip["manifest"]["tables"]) > 0


def test_large_tables_are_split_into_slices(round_trip: dict[str, Any]) -> None:
    tables = {(t["role"], t["name"]): t for t in round_trip["manifest"]["tables"]}
    assert len(tables[("raw", "events")]["files"]) > 1
    assert len(tables[("marts", "daily_visitor_states")]["files"]) >= 1


def test_marts_have_their_figures(round_trip: dict[str, Any]) -> None:
    assert round_trip["restored_marts"] == round_trip["marts"]
    assert round_trip["dbt_ok"]
    assert round_trip["after_dbt"] == round_trip["marts"]


def test_logins_clients_and_dagster_work(round_trip: dict[str, Any]) -> None:
    from accounts.db import session_scope
    from accounts.hashing import verify_secret
    from accounts.service import authenticate_user, get_client

    with session_scope(round_trip["fresh"]) as session:
        assert authenticate_user(session, "ada@example.com", PASSWORD) is not None
        assert authenticate_user(session, "ada@example.com", PASSWORD + "x") is None
        client = get_client(session, round_trip["client_id"])
        assert verify_secret(client.secret_hash, round_trip["secret"])
    assert round_trip["run_id"] in round_trip["restored_runs"]


def test_backup_files_are_private_and_progress_is_shown(round_trip: dict[str, Any]) -> None:
    target: Path = round_trip["target"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    files = [p for p in target.rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in target.rglob("*") if p.is_dir())
    assert any("events" in m and "rows" in m for m in round_trip["messages"])


def test_restore_refuses_a_warehouse_that_holds_data(round_trip: dict[str, Any]) -> None:
    with pytest.raises(BackupError, match="already holds"):
        restore(round_trip["target"], settings=round_trip["fresh"])

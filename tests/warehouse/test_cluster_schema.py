"""Cluster mode of the raw schema (warehouse/cluster.py, docs/decisions/0019).

No ClickHouse cluster can run here, so the cluster DDL is checked with ClickHouse's own parser
(``formatQuery`` and ``EXPLAIN AST`` through the embedded warehouse): every statement parses,
carries ON CLUSTER, and has the engine its table needs. The tests marked ``live_cluster`` run
only against a real cluster: TRACKHOUSE_CLICKHOUSE_URL=<a node> TRACKHOUSE_CLICKHOUSE_CLUSTER=
<name> (README, Cluster).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from trackhouse.settings import PROJECT_ROOT, Settings, get_settings
from warehouse import cluster
from warehouse.migrate import all_statements, discover, split_statements

CLUSTER = "prod_cluster"
LIVE_CLUSTER = os.environ.get("TRACKHOUSE_CLICKHOUSE_CLUSTER")
live_cluster = pytest.mark.skipif(
    not LIVE_CLUSTER, reason="needs a real ClickHouse cluster: TRACKHOUSE_CLICKHOUSE_URL and "
    "TRACKHOUSE_CLICKHOUSE_CLUSTER (README, Cluster)")


def formatted(ch: Client, statement: str) -> str:
    """ClickHouse's own normalised text of a statement (raises on a syntax error)."""
    return ch.query("select formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]


def cluster_plan() -> list[tuple[str, str]]:
    return all_statements(Settings(clickhouse_cluster=CLUSTER, raw_database="trackhouse"))


def test_every_cluster_statement_parses_and_runs_on_the_cluster(ch: Client) -> None:
    plan = cluster_plan()
    assert len(plan) >= 12
    for label, statement in plan:
        text = formatted(ch, statement)
        assert f"ON CLUSTER {CLUSTER}" in text, (label, text)
        assert "--" not in statement.splitlines()[0], (label, statement)


def test_engines_of_the_cluster_tables(ch: Client) -> None:
    engines: dict[str, str] = {}
    for _, statement in cluster_plan():
        if not statement.startswith("create table"):
            continue
        ast = ch.raw_query(f"explain ast {statement}", fmt="TSVRaw").decode()
        lines = ast.splitlines()
        table = lines[2].split()[-1]  # CreateQuery db table / Identifier db / Identifier table
        storage = lines.index(next(line for line in lines if "Storage definition" in line))
        engine = lines[storage + 1].split()[1]  # Function <Engine>
        engines[table] = engine
        text = formatted(ch, statement)
        if engine.startswith("Replicated"):
            path = "{shard}" if table.endswith(cluster.LOCAL_SUFFIX) else "/all/"
            assert path in text and "'{replica}'" in text, text
            assert "replicated_deduplication_window = 10000" in text or table in (
                "projects", "recompute", "schema_migrations"), text
    assert engines == {
        "schema_migrations": "ReplicatedReplacingMergeTree",
        "events_local": "ReplicatedReplacingMergeTree",
        "events": "Distributed",
        "profiles_local": "ReplicatedReplacingMergeTree",
        "profiles": "Distributed",
        "projects": "ReplicatedReplacingMergeTree",
        "recompute": "ReplicatedMergeTree",
        "erase_targets": "Memory",
    }


def test_distributed_tables_shard_by_device_and_profile(ch: Client) -> None:
    distributed = {
        s.split()[5].split(".")[1]: formatted(ch, s)
        for _, s in cluster_plan() if "Distributed(" in s
    }
    assert set(distributed) == {"events", "profiles"}
    assert ("Distributed('prod_cluster', 'trackhouse', 'events_local', "
            "cityHash64(project_id, device_id))") in distributed["events"]
    assert "cityHash64(project_id, profile_id)" in distributed["profiles"]
    # the Replicated engine keeps the single-server engine's own arguments after path/replica
    projects = next(s for _, s in cluster_plan() if ".projects " in s)
    assert ("ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', "
            "'{replica}', updated_at, is_deleted)") in formatted(ch, projects)


def test_alterations_go_to_the_tables_that_need_them() -> None:
    alters = [s for _, s in cluster_plan() if s.startswith("alter table")]
    targets = [(s.split()[2], "modify column" in s, "index" in s) for s in alters]
    # column changes: the local table and the Distributed one; indexes: the local table only
    assert targets == [
        ("trackhouse.events_local", True, False),
        ("trackhouse.events", True, False),
        ("trackhouse.events_local", False, True),
        ("trackhouse.events_local", False, True),
    ]


def test_without_a_cluster_the_files_run_as_they_are() -> None:
    """No rewriting on one server: each statement is its file's text, and none is only a
    comment (a real server refuses that as an empty query)."""
    settings = Settings(raw_database="trackhouse")
    for migration in discover():
        text = migration.path.read_text().replace("{raw_database}", "trackhouse")
        for statement in migration.statements(settings):
            assert statement in text
            assert "cluster" not in statement.lower()
            code = [line for line in statement.splitlines() if not line.strip().startswith("--")]
            assert any(line.strip() for line in code), statement


def test_a_comment_line_ending_in_a_semicolon_ends_no_statement() -> None:
    sql = "-- first (a);\ncreate table a.b (x UInt8)\n-- note;\nengine = Memory;\n-- tail;\n"
    assert split_statements(sql) == [
        "create table a.b (x UInt8)\n-- note;\nengine = Memory"]


@pytest.mark.parametrize("statement", [
    "insert into trackhouse.events select * from trackhouse.events",
    "drop table trackhouse.events",
    "alter table trackhouse.events add column x UInt8, add index i x type minmax",
    "create table if not exists trackhouse.t (x UInt8) engine = Log",
])
def test_a_statement_without_a_known_cluster_form_is_refused(statement: str) -> None:
    with pytest.raises(cluster.ClusterDDLError):
        cluster.ClusterSchema(CLUSTER, "trackhouse").statements(statement)


@pytest.mark.parametrize("name", ["x' on cluster y", "a b", "-x", "a;drop", "c\n"])
def test_hostile_cluster_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        Settings(clickhouse_cluster=name)
    with pytest.raises(ValueError):
        cluster.check_name(name)


def test_an_empty_cluster_setting_means_one_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKHOUSE_CLICKHOUSE_CLUSTER", "")
    assert Settings().clickhouse_cluster is None


def test_migrate_sql_prints_the_plan_and_refuses_a_bad_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from trackhouse.cli import app

    monkeypatch.delenv("TRACKHOUSE_CLICKHOUSE_CLUSTER", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    shown = runner.invoke(app, ["migrate-sql", "--cluster", "c1"])
    assert shown.exit_code == 0, shown.output
    expected = all_statements(get_settings().model_copy(update={"clickhouse_cluster": "c1"}))
    assert shown.output.count("on cluster 'c1'") == len(expected)
    single = runner.invoke(app, ["migrate-sql"])
    assert single.exit_code == 0 and "cluster" not in single.output.lower()
    assert all(statement in single.output for _, statement in all_statements(get_settings()))
    bad = runner.invoke(app, ["migrate-sql", "--cluster", "x'y"])
    assert bad.exit_code == 2 and "cluster name" in bad.output


def test_cluster_clients_insert_synchronously_and_keep_the_retry_dedup(scratch_db: str) -> None:
    """On a cluster every client (the worker's too) inserts with the cluster settings, which
    ClickHouse accepts; a batch inserted twice with its token is stored once (on a cluster each
    shard drops its sub-block)."""
    from warehouse.client import warehouse

    client = warehouse(get_settings().model_copy(update={"clickhouse_cluster": CLUSTER}))
    try:
        assert client.get_client_setting("insert_distributed_sync") in (1, "1")
        client.command(f"create table {scratch_db}.t (x UInt32) engine = MergeTree order by x "
                       "settings non_replicated_deduplication_window = 100")
        for _ in range(2):
            client.raw_insert(f"{scratch_db}.t", insert_block=b'{"x":1}\n{"x":2}\n',
                              fmt="JSONEachRow",
                              settings={"insert_deduplication_token": "batch-1"})
        assert client.query(f"select count() from {scratch_db}.t").result_rows[0][0] == 2
    finally:
        client.close()
    single = warehouse(get_settings().model_copy(update={"clickhouse_cluster": None}))
    assert single.get_client_setting("insert_distributed_sync") is None
    single.close()


def test_cluster_schema_executes_in_chdb_with_a_cluster_and_sync_inserts_refuse_lost_shards(
    tmp_path: Path,
) -> None:
    """The cluster DDL executed (not only parsed) by chdb configured with a two-shard cluster
    (ON CLUSTER and replication need a server and Keeper: removed there). The shards listen
    nowhere: the worker's synchronous insert fails, where the default (background) mode would
    have answered "accepted" with the row stored on no shard."""
    script = Path(__file__).with_name("cluster_schema_in_chdb.py")
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "config.xml")],
                            capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["executed"] == len(cluster_plan())
    assert report["engines"]["events"] == report["engines"]["profiles"] == "Distributed"
    assert report["country_types"] == ["String"]  # 0002 altered the Distributed table too
    assert report["inserts"]["sync"] == "Code: 210"  # NETWORK_ERROR: not landed, retried
    assert report["inserts"]["async"] == "accepted" and report["rows_stored_locally"] == 0


# --- against a real cluster only (TRACKHOUSE_CLICKHOUSE_CLUSTER) ----------------------------

@live_cluster
def test_live_cluster_tables(ch: Client, migrated: None) -> None:
    rows = ch.query(
        "select name, engine from system.tables where database = {db:String}",
        parameters={"db": os.environ.get("TRACKHOUSE_RAW_DATABASE", "trackhouse")}).result_rows
    engines = {str(name): str(engine) for name, engine in rows}
    assert engines["events"] == "Distributed" and engines["profiles"] == "Distributed"
    assert engines["events_local"] == "ReplicatedReplacingMergeTree"
    assert engines["schema_migrations"] == "ReplicatedReplacingMergeTree"
    hosts = ch.query("select count() from system.clusters where cluster = {c:String}",
                     parameters={"c": LIVE_CLUSTER}).result_rows[0][0]
    assert hosts >= 1


@live_cluster
def test_live_cluster_keeps_a_device_on_one_shard_and_drops_a_retried_batch(
    ch: Client, migrated: None,
) -> None:
    from collector.worker import INSERT_SETTINGS

    raw = os.environ.get("TRACKHOUSE_RAW_DATABASE", "trackhouse")
    project = f"cluster-{uuid.uuid4().hex[:8]}"
    rows = "\n".join(
        f'{{"id":"{uuid.uuid4()}","project_id":"{project}","name":"e","device_id":"d{i % 7}",'
        f'"created_at":"2026-01-01 00:00:0{i % 10}","received_at":"2026-01-01 00:00:00"}}'
        for i in range(70)).encode()
    settings = INSERT_SETTINGS | {"insert_deduplication_token": f"{project}-batch"}
    assert ch.get_client_setting("insert_distributed_sync") in (1, "1")
    for _ in range(2):  # the worker's retry of one batch
        ch.raw_insert(f"{raw}.events", insert_block=rows, fmt="JSONEachRow", settings=settings)
    counted = ch.query(f"select count(), max(shards) from (select device_id, "
                       f"uniqExact(_shard_num) as shards from {raw}.events "
                       "where project_id = {p:String} group by device_id)",
                       parameters={"p": project}).result_rows[0]
    assert counted == (7, 1)
    total = ch.query(f"select count() from {raw}.events where project_id = {{p:String}}",
                     parameters={"p": project}).result_rows[0][0]
    assert total == 70
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", LIVE_CLUSTER or "")

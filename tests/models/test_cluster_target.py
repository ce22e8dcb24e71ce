"""The dbt `cluster` target agrees with the raw schema's cluster mode (docs/decisions/0019).

``dbt compile --target cluster`` runs against the embedded warehouse, which has no cluster: the
cluster name is left empty there (dbt-clickhouse would list relations with
``clusterAllReplicas(<name>, ...)``), which is the one difference from a real cluster's compile.
The compiled SQL of every model is checked with ClickHouse's parser, and the placement each
model's configuration gives (materialization, engine, sharding key) against warehouse/cluster.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from warehouse import cluster

DEVICE_SHARDED = {"stg_events", "int_device_days", "sessions"}
EVERY_NODE_ENGINE = "ReplicatedMergeTree('/clickhouse/tables/{uuid}/all', '{replica}')"
SHARD_ENGINE = "ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}')"


@pytest.fixture(scope="module")
def cluster_manifest(
    migrated: None, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    from trackhouse.dbt import run_dbt
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    settings = get_settings().model_copy(
        update={"analytics_database": f"analytics_{uuid.uuid4().hex[:10]}"})
    target = tmp_path_factory.mktemp("dbt-cluster-target")
    result = run_dbt(["compile", "--target", "cluster", "--target-path", str(target),
                      "--log-path", str(target)], settings)
    try:
        assert result.success, repr(result.exception)
        yield json.loads((Path(target) / "manifest.json").read_text())
    finally:
        client = warehouse(settings)
        for layer in ("", "_staging", "_intermediate"):
            client.command(f"drop database if exists {settings.analytics_database}{layer}")
        client.close()


def formatted(ch: Client, statement: str) -> str:
    return ch.query("select formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]


def nodes(manifest: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in manifest["nodes"].values()
            if n["resource_type"] == kind and n["package_name"] == "trackhouse"}


def test_compiled_models_parse_and_read_only_distributed_or_whole_tables(
    cluster_manifest: dict[str, Any], ch: Client,
) -> None:
    models = nodes(cluster_manifest, "model")
    assert len(models) >= 20
    for name, node in models.items():
        code = node["compiled_code"]
        assert formatted(ch, code).strip(), name
        # every model reads the Distributed (or full-replica) tables, never one shard's part
        assert cluster.LOCAL_SUFFIX + " " not in code and "_local`" not in code, name


def test_device_level_models_are_sharded_like_the_raw_events(
    cluster_manifest: dict[str, Any], ch: Client,
) -> None:
    models = nodes(cluster_manifest, "model")
    for name in DEVICE_SHARDED:
        config = models[name]["config"]
        assert config["materialized"] == "distributed_incremental", name
        assert config["sharding_key"] == cluster.SHARDING_KEYS["events"], name
        assert config["engine"] == SHARD_ENGINE, name
        assert config["incremental_strategy"] == "delete+insert", name
    for name, node in models.items():
        config = node["config"]
        if name in DEVICE_SHARDED or config["materialized"] in ("view", "ephemeral"):
            continue
        assert config["materialized"] in ("incremental", "table"), name
        assert config["engine"] == EVERY_NODE_ENGINE, name
    seeds = nodes(cluster_manifest, "seed")
    assert seeds and all(s["config"]["engine"] == EVERY_NODE_ENGINE for s in seeds.values())
    for engine in (SHARD_ENGINE, EVERY_NODE_ENGINE):
        text = formatted(ch, "create table a.b on cluster c (x UInt8) "
                         f"engine = {engine} order by x")
        assert "ON CLUSTER c" in text and "ENGINE = ReplicatedMergeTree" in text


def test_the_default_target_keeps_its_engine() -> None:
    """On one server every table stays a MergeTree (dbt_project.yml's cluster switch is the
    target name, which dbt_env sets from TRACKHOUSE_CLICKHOUSE_CLUSTER)."""
    from trackhouse.dbt import dbt_env
    from trackhouse.settings import get_settings

    single = dbt_env(get_settings().model_copy(update={"clickhouse_cluster": None}))
    assert single["TRACKHOUSE_DBT_TARGET"] == "default"
    clustered = dbt_env(get_settings().model_copy(update={"clickhouse_cluster": "c1"}))
    assert (clustered["TRACKHOUSE_DBT_TARGET"], clustered["TRACKHOUSE_DBT_CLUSTER"]) == (
        "cluster", "c1")

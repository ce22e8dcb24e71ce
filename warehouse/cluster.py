"""Cluster mode of the raw schema: the one contract for where raw rows live on a ClickHouse cluster.

With ``TRACKHOUSE_CLICKHOUSE_CLUSTER=<name>`` the migrations (``warehouse/migrate.py``) run the
cluster form of each statement of their ``.sql`` files, made here (docs/decisions/0019):

- ``events`` and ``profiles`` become ``<table>_local`` on every node, ``Replicated*MergeTree``
  under ``/clickhouse/tables/{shard}/{database}/{table}`` with ``{replica}``, and a
  ``Distributed`` table of the old name over them, sharded so that one device's events (one
  profile's rows) live on one shard. Everything that reads or writes ``events`` keeps its name.
- ``projects``, ``recompute`` and ``schema_migrations`` are small: one replica on every node of
  the cluster (no ``{shard}`` in the path), so every node reads them locally and in full.
- every statement carries ``ON CLUSTER``; a statement of a shape this module does not know is
  refused, so a new migration cannot silently run on one node only.

Without the setting nothing here runs: the files' statements are applied as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from warehouse.sql_text import split_top_level

# Replicated engine arguments: the first pair names the table's ZooKeeper/Keeper path and the
# replica (server macros), the engine's own arguments follow.
SHARD_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
EVERY_NODE_PATH = "/clickhouse/tables/all/{database}/{table}"
REPLICA = "{replica}"

# The raw tables split across shards, by the key that keeps a device's events (a profile's rows)
# together: sessions and device-level models need all of one device's events on one shard.
SHARDING_KEYS = {
    "events": "cityHash64(project_id, device_id)",
    "profiles": "cityHash64(project_id, profile_id)",
}
LOCAL_SUFFIX = "_local"

# Settings of every client on a cluster (warehouse/client.py), for the inserts into the Distributed
# raw tables above all (the worker's): the insert returns once every shard has
# stored its rows (never "accepted" for rows still queued on the initiator), and the batch's
# insert_deduplication_token reaches each shard with its sub-block, which the sharding key
# makes the same on every retry, so a retried batch is dropped shard by shard.
INSERT_SETTINGS = {"insert_distributed_sync": 1, "insert_deduplicate": 1}

CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


class ClusterDDLError(ValueError):
    """A migration statement has no known cluster form."""


def check_name(cluster: str) -> str:
    if not CLUSTER_NAME.fullmatch(cluster):
        raise ValueError(f"cluster name {cluster!r}: letters, digits, '_', '.', '-' only "
                         "(as in the server's remote_servers)")
    return cluster


def on_cluster(cluster: str) -> str:
    return f"on cluster '{check_name(cluster)}'"


_LEADING_COMMENTS = re.compile(r"^(\s*--[^\n]*\n)+")
_CREATE_DATABASE = re.compile(r"^create database if not exists (\w+)$", re.IGNORECASE)
_CREATE_TABLE = re.compile(r"^create table if not exists (\w+)\.(\w+)(\s*\()", re.IGNORECASE)
_ENGINE = re.compile(r"\bengine\s*=\s*(\w+)(?:\(([^()]*)\))?", re.IGNORECASE)
_ALTER_TABLE = re.compile(r"^alter table (\w+)\.(\w+)(\s)", re.IGNORECASE)
# ALTER clauses a Distributed table takes too: its columns must follow its local table's.
_COLUMN_CLAUSES = re.compile(r"^\s*(add|modify|drop|rename|comment) column\b", re.IGNORECASE)


@dataclass(frozen=True)
class ClusterSchema:
    """How the raw tables of ``database`` are laid out on ``cluster``."""

    cluster: str
    database: str

    def __post_init__(self) -> None:
        check_name(self.cluster)

    @property
    def clause(self) -> str:
        return on_cluster(self.cluster)

    def statements(self, statement: str) -> list[str]:
        """The cluster form of one single-server statement (one or more statements)."""
        statement = _LEADING_COMMENTS.sub("", statement).strip()
        if match := _CREATE_DATABASE.match(statement):
            return [f"{statement} {self.clause}"]
        if match := _CREATE_TABLE.match(statement):
            return self._create_table(statement, match)
        if match := _ALTER_TABLE.match(statement):
            return self._alter_table(statement, match)
        raise ClusterDDLError("no cluster form for this migration statement (cluster mode "
                              f"knows create database/table and alter table): {statement[:200]}")

    def _create_table(self, statement: str, match: re.Match[str]) -> list[str]:
        database, table = match.group(1), match.group(2)
        engines = list(_ENGINE.finditer(statement))
        if len(engines) != 1:
            raise ClusterDDLError(f"{database}.{table}: expected one engine clause")
        engine = engines[0]
        sharded = table in SHARDING_KEYS
        local = f"{table}{LOCAL_SUFFIX}" if sharded else table
        path = SHARD_PATH if sharded else EVERY_NODE_PATH
        name, arguments = engine.group(1), engine.group(2)
        if name.endswith("MergeTree"):
            replicated = [f"'{path}'", f"'{REPLICA}'"]
            if arguments and arguments.strip():
                replicated.append(arguments.strip())
            engine_sql = f"engine = Replicated{name}({', '.join(replicated)})"
        elif name == "Memory" and not sharded:
            engine_sql = engine.group(0)  # per node, by design: never on disk, never replicated
        else:
            raise ClusterDDLError(f"{database}.{table}: no cluster form for engine {name}")
        tail = statement[engine.end():]
        if name.endswith("MergeTree"):  # the same retry window as on one server
            tail = tail.replace("non_replicated_deduplication_window",
                                "replicated_deduplication_window")
        created = (f"create table if not exists {database}.{local} {self.clause}"
                   f"{statement[match.start(3):engine.start()]}{engine_sql}"
                   f"{tail}")
        if not sharded:
            return [created]
        distributed = (
            f"create table if not exists {database}.{table} {self.clause} "
            f"as {database}.{local}\n"
            f"engine = Distributed('{self.cluster}', '{database}', '{local}', "
            f"{SHARDING_KEYS[table]})"
        )
        return [created, distributed]

    def _alter_table(self, statement: str, match: re.Match[str]) -> list[str]:
        database, table = match.group(1), match.group(2)
        rest = "\n    " + statement[match.end():].lstrip()
        if table not in SHARDING_KEYS:
            return [f"alter table {database}.{table} {self.clause}{rest}"]
        local = f"alter table {database}.{table}{LOCAL_SUFFIX} {self.clause}{rest}"
        clauses = split_top_level(rest)
        if all(_COLUMN_CLAUSES.match(c) for c in clauses):
            # the Distributed table's columns follow the local table's (same alteration)
            return [local, f"alter table {database}.{table} {self.clause}{rest}"]
        if any(_COLUMN_CLAUSES.match(c) for c in clauses):
            raise ClusterDDLError(f"{database}.{table}: split column changes and other "
                                  "alterations into separate statements for cluster mode")
        return [local]  # indexes, settings, mutations: only the local tables hold data


def schema_migrations_ddl(cluster: str, database: str) -> list[str]:
    """The raw database and its record of applied migrations, cluster-wide: one replica on every
    node, so any node answers which versions are applied."""
    clause = on_cluster(cluster)
    return [
        f"create database if not exists {database} {clause}",
        f"create table if not exists {database}.schema_migrations {clause}\n"
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') default now64(3))\n"
        f"engine = ReplicatedReplacingMergeTree('{EVERY_NODE_PATH}', '{REPLICA}') "
        "order by version",
    ]

"""Run the cluster DDL in an in-process chdb that knows a cluster (tests/warehouse/
test_cluster_schema.py runs this file in a subprocess: chdb's state is per process).

chdb is clickhouse-local: it reads ``remote_servers`` from a config file but runs no distributed
DDL queue and no Keeper, so ON CLUSTER is removed and Replicated engines are run as their plain
counterparts; everything else (the Distributed tables over the local ones, the alterations of
both, the index) is executed as generated. The cluster's two shards listen nowhere, so inserts
through a Distributed table show what the worker's settings make of an unreachable shard.
Prints one JSON object.
"""

from __future__ import annotations

import json
import re
import sys
import time

import chdb

from trackhouse.settings import Settings
from warehouse import cluster
from warehouse.migrate import all_statements

CONFIG = """<clickhouse><remote_servers><c1>
<shard><replica><host>127.0.0.1</host><port>1</port></replica></shard>
<shard><replica><host>127.0.0.2</host><port>1</port></replica></shard>
</c1></remote_servers></clickhouse>"""
ROW = ("(generateUUIDv4(), 'p', 'e', 'd1', now64(3), now64(3))")


def main(config_path: str) -> None:
    with open(config_path, "w") as config:
        config.write(CONFIG)
    connection = chdb.connect(f":memory:?config-file={config_path}")
    cursor = connection.cursor()
    executed = 0
    for _, statement in all_statements(Settings(clickhouse_cluster="c1", raw_database="raw")):
        if statement.startswith("system "):
            continue
        local = statement.replace(" on cluster 'c1'", "")
        local = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?", r"\1(", local)
        local = local.replace("replicated_deduplication_window",
                              "non_replicated_deduplication_window")
        cursor.execute(local)
        executed += 1
    cursor.execute("select name, engine from system.tables where database = 'raw'")
    engines = dict(cursor.fetchall())
    cursor.execute("select name, type from system.columns where database = 'raw' "
                   "and table in ('events', 'events_local') and name = 'country'")
    country_types = sorted({row[1] for row in cursor.fetchall()})
    inserts = {}
    for mode, settings in (("sync", cluster.INSERT_SETTINGS),
                           ("async", {"insert_distributed_sync": 0})):
        clause = ", ".join(f"{k} = {v}" for k, v in settings.items())
        started = time.monotonic()
        try:
            cursor.execute("insert into raw.events (id, project_id, name, device_id, created_at,"
                           f" received_at) settings {clause} values {ROW}")
            inserts[mode] = "accepted"
        except Exception as error:  # noqa: BLE001 - the error is the result
            inserts[mode] = str(error).split(".")[0]
        inserts[f"{mode}_s"] = round(time.monotonic() - started, 2)
    cursor.execute("select count() from raw.events_local")
    stored = cursor.fetchall()[0][0]
    print(json.dumps({"executed": executed, "engines": engines, "country_types": country_types,
                      "inserts": inserts, "rows_stored_locally": stored}))


if __name__ == "__main__":
    main(sys.argv[1])

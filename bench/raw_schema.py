"""The raw events table's column types against the warehouse's CPU: the first schema (every
dimension LowCardinality) against today's (migration 0002: plain String, but project_id and
name).

Prints, per round and schema, CPU microseconds of the warehouse process per row to insert
``--parts`` parts of ``--rows`` collector-made import rows (merges stopped), then to merge them
into one (``OPTIMIZE ... FINAL``), and the bytes on disk. Both tables are created side by side
in one embedded warehouse (a ``trackhouse warehouse`` process on a free port with a temporary
data directory), rounds alternate between them, so compare the schemas within a round.

Usage: ``.venv/bin/python bench/raw_schema.py [--rows 50000] [--parts 8] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))
from ingest import tree_cpu_seconds  # noqa: E402  (bench/ingest.py's helper)
from landing import collector_rows, jsonl, migrated_warehouse  # noqa: E402

FIRST_SCHEMA = ROOT / "warehouse" / "migrations" / "0001_raw_schema.sql"


def first_events_ddl(table: str) -> str:
    """``create table`` of the events table exactly as migration 0001 made it, as ``table``."""
    from warehouse.migrate import split_statements

    statements = split_statements(FIRST_SCHEMA.read_text())
    (events,) = (s for s in statements if ".events\n" in s and s.startswith("create table"))
    return events.replace("{raw_database}.events", table, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per insert")
    parser.add_argument("--parts", type=int, default=8, help="inserts (parts) to merge")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from collector.worker import INSERT_SETTINGS

    total = args.rows * args.parts
    rows = collector_rows(total)
    blocks = [jsonl(rows[n * args.rows:(n + 1) * args.rows]) for n in range(args.parts)]
    with migrated_warehouse("trackhouse-bench-schema-") as (client, pid):
        schemas = {
            "first (0001, LowCardinality)": first_events_ddl,
            "today (0002, plain String)": lambda t: f"create table {t} as trackhouse.events",
        }
        print(f"warehouse CPU per row: {args.parts} inserts of {args.rows:,} collector-made "
              f"import rows, then one merge of them")
        for round_number in range(1, args.rounds + 1):
            for n, (label, ddl) in enumerate(schemas.items()):
                table = f"trackhouse.bench_schema_{n}"
                client.command(f"drop table if exists {table}")
                client.command(ddl(table))
                client.command(f"system stop merges {table}")
                before = tree_cpu_seconds(pid)
                for part, block in enumerate(blocks):
                    token = f"{round_number}-{part}"
                    client.raw_insert(table, insert_block=block, fmt="JSONEachRow",
                                      settings=INSERT_SETTINGS | {
                                          "insert_deduplication_token": token})
                inserted = tree_cpu_seconds(pid)
                client.command(f"system start merges {table}")
                client.command(f"optimize table {table} final")
                merged = tree_cpu_seconds(pid)
                size = client.query(
                    "select sum(bytes_on_disk) from system.parts where active and "
                    "database = 'trackhouse' and table = {t:String}",
                    parameters={"t": table.split(".")[1]}).result_rows[0][0]
                print(f"  round {round_number}  {label:<30} insert "
                      f"{(inserted - before) / total * 1e6:5.2f} us  merge "
                      f"{(merged - inserted) / total * 1e6:5.2f} us  "
                      f"on disk {size / 1e6:6.2f} MB", flush=True)
                client.command(f"drop table {table}")


if __name__ == "__main__":
    main()

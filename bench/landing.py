"""Where the embedded warehouse's CPU goes when the worker lands imported events.

Prints, from one run, CPU microseconds of the warehouse process per row:
* parsing only (inserts into a ``Null``-engine copy of ``trackhouse.events``): the rows as the
  collector makes them, then the same rows without their enrichment text columns (geo, user
  agent, origin), without their DateTime64 columns, and without the event id;
* landing as the worker does (``INSERT_SETTINGS``), one insert a second, with the table's
  background merges stopped, then running: what a part costs to write, and what merging it
  costs on top.

Usage: ``.venv/bin/python bench/landing.py [--rows 40000] [--inserts 15]``. The rows are
``/track/batch`` imports prepared by the collector's own code (the shape of
``bench/ingest.py``'s batch phase); the warehouse runs as its own ``trackhouse warehouse``
process on a free port with a temporary data directory, and its CPU is read from /proc.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # after ROOT: tests/warehouse/ must not shadow the package
sys.path.append(str(ROOT / "bench"))
from ingest import UA, tree_cpu_seconds  # noqa: E402  (bench/ingest.py's helpers)

# bench/warehouse.py's endpoint starter (loaded by path: its module name is the package's)
_spec = importlib.util.spec_from_file_location("warehouse_bench", ROOT / "bench" / "warehouse.py")
assert _spec is not None and _spec.loader is not None
warehouse_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(warehouse_bench)

ENRICHMENT_TEXT = ("origin", "country", "region", "city", "os", "os_version",
                   "browser", "browser_version", "device")
DATETIMES = ("created_at", "received_at", "imported_at")


def collector_rows(count: int) -> list[dict[str, Any]]:
    """Import rows exactly as the collector buffers them (an importer forwarding visitors'
    IPs, 50 pages, kept timestamps), decoded back to dicts so columns can be left out."""
    from accounts.auth import AuthenticatedClient
    from collector import identity, ingest
    from collector.enrich.geo import GeoLocator
    from collector.schemas import parse_message
    from trackhouse.settings import get_settings

    settings = get_settings()
    services = ingest.Services(settings=settings, redis=None,  # type: ignore[arg-type]
                               geo=GeoLocator(settings.collector_geo_db_path))
    client = AuthenticatedClient(client_id="bench", project_id="bench-landing", type="write",
                                 has_secret=True, allowed_origins=(), project_timezone="UTC")
    context = ingest.IngestContext(services=services, client=client, ip="127.0.0.1",
                                   user_agent=UA, importing=True)
    salts = ("landing-bench-salt", "landing-bench-salt-before")
    rows = []
    for n in range(count):
        message = {"type": "track", "payload": {"name": "screen_view", "properties": {
            "__eventId": f"landing-{n}", "__ip": f"81.2.{n % 250}.{n // 250 % 20 + 1}",
            "__path": f"https://bench.example.com/p/{n % 50}",
            "__timestamp": f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z"}}}
        item = ingest._prepare(n, message, parse_message(message), context, salts)
        # the two ids the collector adds to an import row (one session id for all here: the
        # same length as the collector's half-hour ids, which is what parsing sees)
        item.row["device_id"] = item.device_id
        item.row["session_id"] = identity.session_id("bench-landing", item.device_id, 0)
        rows.append(orjson.loads(item.json()))
    return rows


def jsonl(rows: list[dict[str, Any]], leave_out: tuple[str, ...] = ()) -> bytes:
    return b"\n".join(orjson.dumps({k: v for k, v in row.items() if k not in leave_out})
                      for row in rows)


@contextmanager
def migrated_warehouse(prefix: str) -> Iterator[tuple[Any, int]]:
    """A private embedded warehouse (a ``trackhouse warehouse`` process on a free port, with a
    temporary data directory) holding the raw schema: (a client, the process id)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        endpoint = warehouse_bench.start_endpoint(Path(scratch))
        try:
            os.environ["TRACKHOUSE_CLICKHOUSE_URL"] = endpoint.url
            os.environ["TRACKHOUSE_CLICKHOUSE_PASSWORD"] = endpoint.password
            from trackhouse.settings import get_settings
            from warehouse.client import warehouse
            from warehouse.migrate import migrate

            get_settings.cache_clear()
            migrate()
            yield warehouse(send_receive_timeout=600), endpoint.process.pid
        finally:
            endpoint.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40_000, help="rows per insert (the "
                        "worker's inserts at ~40,000 events/s, one a second)")
    parser.add_argument("--inserts", type=int, default=15, help="inserts per landing figure")
    args = parser.parse_args()

    from collector.worker import INSERT_SETTINGS

    rows = collector_rows(args.rows)
    with migrated_warehouse("trackhouse-bench-landing-") as (client, pid):

        def cpu_per_row(work: Any, row_count: int) -> float:
            before = tree_cpu_seconds(pid)
            work()
            return (tree_cpu_seconds(pid) - before) / row_count * 1e6

        client.command("CREATE TABLE trackhouse.events_parse AS trackhouse.events "
                       "ENGINE = Null")
        print(f"warehouse CPU per row, {args.rows:,} collector-made import rows per insert")
        variants = {"as the collector makes them": (),
                    "without enrichment text": ENRICHMENT_TEXT,
                    "without DateTime64 columns": DATETIMES, "without the event id": ("id",)}
        full = 0.0
        for label, leave_out in variants.items():
            data = jsonl(rows, leave_out)
            figure = min(cpu_per_row(lambda d=data: client.raw_insert(
                "trackhouse.events_parse", insert_block=d, fmt="JSONEachRow",
                settings=INSERT_SETTINGS), args.rows) for _ in range(3))
            full = full or figure
            print(f"  parse only, {label:<36} {figure:6.2f} us  ({figure / full:.0%}; "
                  f"{len(data) / args.rows:.0f} bytes/row)")

        data = jsonl(rows)
        for merges in ("STOP", "START"):
            client.command("TRUNCATE TABLE trackhouse.events")
            client.command(f"SYSTEM {merges} MERGES trackhouse.events")

            def land(merges: str = merges) -> None:
                started = time.monotonic()
                for n in range(args.inserts):
                    client.raw_insert("trackhouse.events", insert_block=data,
                                      fmt="JSONEachRow", settings=INSERT_SETTINGS | {
                                          "insert_deduplication_token": f"{merges}-{n}"})
                    time.sleep(max(0.0, started + n + 1 - time.monotonic()))
                time.sleep(5)  # merges the inserts set off

            figure = cpu_per_row(land, args.rows * args.inserts)
            parts = client.query("SELECT count() FROM system.parts WHERE database = "
                                 "'trackhouse' AND table = 'events' AND active"
                                 ).result_rows[0][0]
            state = "stopped" if merges == "STOP" else "running"
            print(f"  landing, one insert a second, merges {state:<8} {figure:6.2f} us  "
                  f"(active parts after: {parts})")


if __name__ == "__main__":
    main()

"""Importer benchmark: ``trackhouse import`` end to end on this machine.

    .venv/bin/python bench/importers.py [--events 200000] [--collector-workers 2]
        [--concurrency 4] [--chunk-size 5000] [--sources umami,ga4]

Everything runs here, on free ports with a temporary data directory: a private redis-server
(AOF, fsync every second, as the README advises), the embedded warehouse (or the ClickHouse
named by TRACKHOUSE_CLICKHOUSE_URL), ``trackhouse collector`` and ``trackhouse worker``; the
Umami source is a private database on the machine's PostgreSQL (127.0.0.1:5432), the GA4
source an NDJSON file in BigQuery's export format. Generated data: tests/importers.

Figures per source, from the same run:
1. source only: rows read and mapped to collector messages per second (no sending);
2. end to end: events/s from the start of the import until the collector acknowledged the
   last chunk (each acknowledged chunk is checkpointed), and until ``count()`` of the
   project in ClickHouse reached the imported events (landed);
3. collector floor: the same messages, read into memory first, sent by the same engine (no
   source reading, no checkpoints): what the import path takes without the importer;
4. a rerun with ``--restart``: events/s when every event is answered ``duplicate``.

On a shared machine the rates say little alone; the CPU figures do: CPU microseconds per
event of the importer process and of the stack (collector, worker, warehouse, Redis; not
PostgreSQL, which is the machine's), and what they allow on the idle cores of this machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/ (bench/warehouse.py) and tests/ (tests/warehouse/)
sys.path.append(str(ROOT / "tests"))
sys.path.append(str(ROOT / "tests" / "importers"))  # generated data of the tests
from conftest import free_port, wait_for_http  # noqa: E402  (the test suite's helpers)

sys.path.append(str(ROOT / "bench"))
from ingest import stop_process_groups, tree_cpu_seconds  # noqa: E402  (bench/ingest.py's)

BIN = Path(sys.executable).parent


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="trackhouse-bench-importers-"))
        self.processes: list[subprocess.Popen] = []
        self.names: dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        process = subprocess.Popen(command, env=env, cwd=ROOT,
                                   stdout=(self.tmp / f"{name}.log").open("ab"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        self.names[name] = process
        return process

    def setup(self) -> None:
        redis_port = free_port()
        (self.tmp / "redis").mkdir()
        self.spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                             "--dir", str(self.tmp / "redis"), "--save", "", "--appendonly",
                             "yes", "--appendfsync", "everysec",
                             "--auto-aof-rewrite-min-size", "1gb"], dict(os.environ))
        env = {**os.environ, "TRACKHOUSE_DATA_DIR": str(self.tmp / "data"),
               "TRACKHOUSE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
        if not os.environ.get("TRACKHOUSE_CLICKHOUSE_URL"):
            port = free_port()
            house = self.spawn("warehouse", [str(BIN / "trackhouse"), "warehouse", "--port",
                                             str(port), "--data-dir", str(self.tmp / "ch")], env)
            env["TRACKHOUSE_CLICKHOUSE_URL"] = f"http://127.0.0.1:{port}"
            wait_for_http(f"http://127.0.0.1:{port}/ping", 120, house)
        os.environ.update(env)
        from accounts.db import upgrade
        from trackhouse.settings import get_settings
        from warehouse.client import warehouse
        from warehouse.migrate import migrate

        get_settings.cache_clear()
        migrate()
        upgrade()
        self.ch = warehouse()
        self.collector_url = f"http://127.0.0.1:{free_port()}"
        collector = self.spawn("collector", [
            str(BIN / "trackhouse"), "collector", "--port",
            self.collector_url.rsplit(":", 1)[1], "--workers", str(self.args.collector_workers)],
            env)
        self.spawn("worker", [str(BIN / "trackhouse"), "worker"], env)
        wait_for_http(f"{self.collector_url}/health", 120, collector)

    def project(self, name: str) -> str:
        from accounts import service
        from accounts.db import session_scope

        project = f"bench-{name}-{uuid.uuid4().hex[:6]}"
        with session_scope() as session:
            service.create_project(session, name=project, project_id=project, mirror=False)
        return project

    def landed(self, project: str) -> int:
        from trackhouse.settings import get_settings

        return int(self.ch.query(
            f"select count() from {get_settings().raw_database}.events "
            "where project_id = {p:String}", parameters={"p": project}).result_rows[0][0])

    def close(self) -> None:
        stop_process_groups(self.processes)
        shutil.rmtree(self.tmp, ignore_errors=True)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Replay:
    """Messages held in memory, sent as a source: the collector floor."""

    name = "replay"
    description = "replay"

    def __init__(self, chunks: list) -> None:
        self.key = uuid.uuid4().hex
        self.chunks_ = chunks

    def count(self, position: str | None) -> int | None:
        return None

    def chunks(self, position: str | None, size: int):  # type: ignore[no-untyped-def]
        yield from self.chunks_


def measure(stack: Stack, name: str, make_source, args: argparse.Namespace) -> dict[str, float]:
    from importers.engine import Sender, fewer_collections
    from importers.runner import Options, import_source, import_target

    source = make_source()
    started, cpu = time.perf_counter(), own_cpu_seconds()
    with fewer_collections():  # as run_import reads: the held chunks are walked less often
        held = list(source.chunks(None, args.chunk_size))
    read = sum(len(chunk.messages) for chunk in held)
    read_s = time.perf_counter() - started
    source_cpu = own_cpu_seconds() - cpu

    project = stack.project(name)
    options = Options(collector_url=stack.collector_url, chunk_size=args.chunk_size,
                      concurrency=args.concurrency)
    parts_cpu = {n: tree_cpu_seconds(p.pid) for n, p in stack.names.items()}
    source = make_source()
    # the source database's own CPU (Umami: the PostgreSQL backend serving this import)
    backend = getattr(getattr(source, "connection", None), "info", None)
    backend_pid = backend.backend_pid if backend is not None else 0
    database_cpu = tree_cpu_seconds(backend_pid) if backend_pid else 0.0
    started, cpu = time.perf_counter(), own_cpu_seconds()
    outcome = import_source(project, source, options)
    acked_s = time.perf_counter() - started
    # the importer's CPU up to the last acknowledgement (the wait for landing below polls
    # the warehouse from this process: not the importer's work)
    importer_cpu = own_cpu_seconds() - cpu
    database_cpu = tree_cpu_seconds(backend_pid) - database_cpu if backend_pid else 0.0
    imported = outcome.run.imported
    while stack.landed(project) < imported:
        time.sleep(0.05)
    landed_s = time.perf_counter() - started
    parts_cpu = {n: tree_cpu_seconds(p.pid) - parts_cpu[n] for n, p in stack.names.items()}
    stack_cpu = sum(parts_cpu.values())

    # the collector floor: the same messages into a project of their own, no source reads;
    # the importer's CPU there is the engine's alone (encoding, HTTP, results, checkpoints)
    from importers.checkpoints import DatabaseCheckpoints
    from importers.engine import run_import

    floor_project = stack.project(f"{name}-floor")
    replay = Replay(held)
    with import_target(floor_project, options) as target:
        sender = Sender(target)
        started, cpu = time.perf_counter(), own_cpu_seconds()
        run_import(replay, sender, DatabaseCheckpoints(floor_project, replay),
                   chunk_size=args.chunk_size, concurrency=args.concurrency)
        floor_s = time.perf_counter() - started
        engine_cpu = own_cpu_seconds() - cpu
        sender.http.close()

    started = time.perf_counter()
    again = import_source(project, make_source(),
                          Options(collector_url=stack.collector_url, chunk_size=args.chunk_size,
                                  concurrency=args.concurrency, restart=True))
    rerun_s = time.perf_counter() - started
    return {"rows": read, "imported": imported, "refused": outcome.run.refused,
            "source_per_s": read / read_s, "acked_per_s": imported / acked_s,
            "landed_per_s": imported / landed_s, "floor_per_s": read / floor_s,
            "rerun_per_s": again.run.read / rerun_s, "rerun_duplicates": again.run.duplicates,
            "source_cpu_us": source_cpu / read * 1e6, "importer_cpu_us": importer_cpu / read * 1e6,
            "engine_cpu_us": engine_cpu / read * 1e6, "database_cpu_us": database_cpu / read * 1e6,
            "stack_cpu_us": stack_cpu / read * 1e6,
            **{f"{n}_cpu_us": cpu / read * 1e6 for n, cpu in parts_cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--collector-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--sources", default="umami,ga4")
    args = parser.parse_args()
    stack = Stack(args)
    figures: dict[str, dict[str, float]] = {}
    try:
        stack.setup()
        sources = args.sources.split(",")
        if "umami" in sources:
            from umami_data import umami_database

            made = time.perf_counter()
            # ~7 events per session in the generator
            with umami_database(sessions=max(args.events // 7, 1), seed=1,
                                start=datetime(2025, 1, 1, tzinfo=UTC), days=300) as umami:
                print(f"umami: {umami.events:,} events generated in "
                      f"{time.perf_counter() - made:.0f} s", flush=True)
                from importers.umami import UmamiSource

                figures["umami"] = measure(
                    stack, "umami", lambda: UmamiSource(umami.url, umami.website_id), args)
        if "ga4" in sources:
            from export_data import ga4_rows, write_ga4_ndjson

            rows, _, _ = ga4_rows(max(args.events // 4, 1), seed=1)
            path = write_ga4_ndjson(stack.tmp / "events.json", rows)
            from importers.ga4 import Ga4Source

            figures["ga4"] = measure(stack, "ga4", lambda: Ga4Source([path]), args)
    finally:
        stack.close()
    load = os.getloadavg()
    print(f"\nload average during the run (1/5/15 min): {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} on {os.cpu_count()} cores")
    print(f"{'source':8} {'rows':>9} {'source/s':>10} {'acked/s':>9} {'landed/s':>9} "
          f"{'floor/s':>9} {'rerun/s':>9}")
    for name, f in figures.items():
        print(f"{name:8} {f['rows']:>9,.0f} {f['source_per_s']:>10,.0f} "
              f"{f['acked_per_s']:>9,.0f} {f['landed_per_s']:>9,.0f} {f['floor_per_s']:>9,.0f}"
              f" {f['rerun_per_s']:>9,.0f}   (imported {f['imported']:,.0f}, refused "
              f"{f['refused']:,.0f}, rerun duplicates {f['rerun_duplicates']:,.0f})")
    cores = os.cpu_count() or 1
    print(f"\nCPU microseconds per event (importer: until acknowledged; stack: until landed); "
          f"events/s that {cores} idle cores allow at that cost:")
    for name, f in figures.items():
        total = f["importer_cpu_us"] + f["stack_cpu_us"] + f["database_cpu_us"]
        print(f"{name:8} importer {f['importer_cpu_us']:6.1f} (source reading and mapping "
              f"{f['source_cpu_us']:.1f}, engine alone {f['engine_cpu_us']:.1f}), source "
              f"database {f['database_cpu_us']:.1f}, stack {f['stack_cpu_us']:6.1f}, "
              f"total {total:6.1f} -> {cores / total * 1e6:,.0f} events/s")
        print("         stack by process: " + ", ".join(
            f"{n} {f[f'{n}_cpu_us']:.1f}" for n in ("collector", "worker", "warehouse", "redis")
            if f"{n}_cpu_us" in f))


if __name__ == "__main__":
    main()

"""Horizontal services: events/s landed with 1 collector + 1 worker, then 2 + 2, on one Redis
and one warehouse, and the CPU each process spends per event (the capacity model's inputs).

    .venv/bin/python bench/horizontal.py [--duration 15] [--loads track,batch]

Runs on this machine in one go, on free ports with a temporary data directory: a private
redis-server (AOF, fsync every second, as scripts/quickstart.sh starts it), the embedded
warehouse, then for each layout N ``trackhouse collector --workers 1`` processes (each on its
own port, as separate hosts behind a load balancer would be) and N ``trackhouse worker``
processes. One ``wrk`` per collector sends the load for ``--duration`` seconds:

- ``track``: single ``/track`` events (a browser tracker), 64 connections per collector;
- ``batch``: ``/track/batch`` of 100 live events per request (a server-side SDK).

Per layout and load it prints the accepted and the landed events/s (from the start of the
load until ``count()`` in ClickHouse reached the accepted events) and the CPU microseconds per
event of each kind of process: collectors, workers, Redis (INFO ``used_cpu_*``), the
warehouse until the events landed, and the warehouse's merges in the 10 s after; once in
all, once above each process's idle CPU (measured for 5 s before the load: polling loops),
which is what a further event adds. CPU time is
read per process (/proc utime + stime, what psutil's ``cpu_times`` reads), so it does not
depend on other load on the machine; the events/s do, and the 2 + 2 layout on two cores
shares them with everything else: compare the ratio within one run only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))
sys.path.append(str(ROOT / "bench"))
from conftest import free_port, wait_for_http  # noqa: E402  (the test suite's helpers)
from ingest import (  # noqa: E402  (bench/ingest.py's load scripts and helpers)
    AOF_REWRITE,
    BATCH_LUA,
    ORIGIN,
    TRACK_LUA,
    UA,
    bench_project,
    run_wrk,
    stop_process_groups,
    tree_cpu_seconds,
)

BIN = Path(sys.executable).parent
BATCH_ITEMS = 100
SETTLE_S = 10.0  # after landing: the merges of the new parts
IDLE_S = 5.0  # before the load: each process's CPU with no traffic


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="trackhouse-bench-horizontal-"))
        self.processes: list[subprocess.Popen] = []
        self.run_id = uuid.uuid4().hex[:8]

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("ab")
        process = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def close(self) -> None:
        stop_process_groups(self.processes, grace_s=30)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def setup(self) -> None:
        redis_port = free_port()
        (self.tmp / "redis").mkdir()
        self.env = {**os.environ, "TRACKHOUSE_DATA_DIR": str(self.tmp / "data"),
                    "TRACKHOUSE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                    "TRACKHOUSE_COLLECTOR_RATE_LIMIT_CLIENT": "1000000/second",
                    "TRACKHOUSE_COLLECTOR_RATE_LIMIT_IP": "1000000/second"}
        self.redis_process = self.spawn("redis", [
            "redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--dir",
            str(self.tmp / "redis"), "--save", "", "--appendonly", "yes", "--appendfsync",
            "everysec", *AOF_REWRITE])
        port = free_port()
        self.warehouse_process = self.spawn("warehouse", [
            str(BIN / "trackhouse"), "warehouse", "--port", str(port), "--data-dir",
            str(self.tmp / "ch")])
        self.env["TRACKHOUSE_CLICKHOUSE_URL"] = f"http://127.0.0.1:{port}"
        wait_for_http(f"http://127.0.0.1:{port}/ping", 60, self.warehouse_process)
        os.environ.update(self.env)

        import redis

        from accounts.db import upgrade
        from trackhouse.settings import get_settings
        from warehouse.client import warehouse
        from warehouse.migrate import migrate

        get_settings.cache_clear()
        self.redis = redis.Redis(port=redis_port)
        migrate()
        upgrade()
        self.project = f"bench-{self.run_id}"
        self.browser_client, self.server_client, self.secret = bench_project(self.project)
        self.ch = warehouse()

    def start_layout(self, n: int) -> tuple[list[subprocess.Popen], list[subprocess.Popen],
                                            list[str]]:
        collectors, urls = [], []
        for i in range(n):
            port = free_port()
            collectors.append(self.spawn(f"collector{n}-{i}", [
                str(BIN / "trackhouse"), "collector", "--port", str(port), "--workers", "1"]))
            urls.append(f"http://127.0.0.1:{port}")
        workers = [self.spawn(f"worker{n}-{i}", [str(BIN / "trackhouse"), "worker"])
                   for i in range(n)]
        for process, url in zip(collectors, urls, strict=True):
            wait_for_http(f"{url}/health", 60, process)
        time.sleep(3)  # the workers past their start-up schema check
        return collectors, workers, urls

    def script(self, name: str, load: str) -> Path:
        # a server-side SDK's batches come from the secret client
        client = self.browser_client if load == "track" else self.server_client
        values = {"run": f"{self.run_id}-{name}", "client": client,
                  "secret": self.secret, "origin": ORIGIN, "ua": UA, "items": BATCH_ITEMS,
                  "delay": "", "timestamp": "", "batch_path": "/track/batch"}
        path = self.tmp / f"{name}.lua"
        path.write_text((TRACK_LUA if load == "track" else BATCH_LUA) % values)
        return path

    def landed(self) -> int:
        return int(self.ch.query("select count() from trackhouse.events where project_id = "
                                 "{p:String}", parameters={"p": self.project}).result_rows[0][0])

    def redis_cpu(self) -> float:
        cpu = self.redis.info("cpu")
        return float(cpu["used_cpu_user"] + cpu["used_cpu_sys"])

    def cpu(self, collectors: list[subprocess.Popen],
            workers: list[subprocess.Popen]) -> dict[str, float]:
        return {"collector": sum(tree_cpu_seconds(p.pid) for p in collectors),
                "worker": sum(tree_cpu_seconds(p.pid) for p in workers),
                "redis": self.redis_cpu(),
                "warehouse": tree_cpu_seconds(self.warehouse_process.pid)}

    def measure(self, n: int, load: str) -> dict[str, float]:
        collectors, workers, urls = self.start_layout(n)
        try:
            base = self.landed()
            # idle first: what the processes spend per second with no traffic (polling)
            idle_from = self.cpu(collectors, workers)
            time.sleep(IDLE_S)
            before = self.cpu(collectors, workers)
            idle = {name: (before[name] - idle_from[name]) / IDLE_S for name in before}
            results: list[dict[str, float]] = [{} for _ in urls]
            connections = 64 if load == "track" else 8

            def drive(i: int) -> None:
                results[i] = run_wrk(urls[i], self.script(f"{load}{n}-{i}", load),
                                     self.args.duration, connections)

            started = time.monotonic()
            threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(urls))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            per_request = 1 if load == "track" else BATCH_ITEMS
            accepted = sum((r["requests"] - r["failed"]) * per_request for r in results)
            seconds = max(r["seconds"] for r in results)
            deadline = time.monotonic() + 300
            while self.landed() < base + accepted:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {self.landed() - base} of {accepted} landed")
                time.sleep(0.05)
            landed_s = time.monotonic() - started
            at_landed = self.cpu(collectors, workers)
            time.sleep(SETTLE_S)
            settled = self.cpu(collectors, workers)
        finally:
            stop_process_groups(workers + collectors, grace_s=30)  # collectors stop first
        if not accepted:
            raise SystemExit(f"{load}: no request accepted; see the logs in {self.tmp}")
        us = {name: (at_landed[name] - before[name]) / accepted * 1e6 for name in before}
        us["merges"] = (settled["warehouse"] - at_landed["warehouse"]) / accepted * 1e6
        # the same less the idle rate over the time: the cost each further event adds
        above = {name: (at_landed[name] - before[name] - idle[name] * landed_s) / accepted * 1e6
                 for name in before}
        above["merges"] = (settled["warehouse"] - at_landed["warehouse"]
                           - idle["warehouse"] * SETTLE_S) / accepted * 1e6
        failed = sum(r["failed"] for r in results)
        return {"accepted_per_s": accepted / seconds, "landed_per_s": accepted / landed_s,
                "events": accepted, "failed": failed, "us": us, "above_idle": above,
                "idle_cores": idle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--loads", default="track,batch")
    parser.add_argument("--layouts", default="1,2", help="collectors (= workers) per layout")
    args = parser.parse_args()
    stack = Stack(args)
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}")
    try:
        stack.setup()
        for load in args.loads.split(","):
            figures = {}
            for n in (int(x) for x in args.layouts.split(",")):
                figures[n] = got = stack.measure(n, load)
                print(f"{load}: {n} collector(s) + {n} worker(s): accepted "
                      f"{got['accepted_per_s']:,.0f} ev/s, landed {got['landed_per_s']:,.0f} "
                      f"ev/s ({got['events']:,} events, {got['failed']} refused); load average "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
                for label, key in (("CPU us/event, all", "us"),
                                   ("CPU us/event above idle", "above_idle")):
                    print(f"  {label}: " + ", ".join(
                        f"{name} {value:.1f}" for name, value in got[key].items()))
                print("  idle cores: " + ", ".join(
                    f"{name} {value:.3f}" for name, value in got["idle_cores"].items()))
            if 1 in figures and 2 in figures:
                print(f"{load}: landed events/s ratio 2+2 / 1+1 = "
                      f"{figures[2]['landed_per_s'] / figures[1]['landed_per_s']:.2f}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()

"""Ingestion benchmark: the collector, its worker, Redis and the warehouse on this machine.

    .venv/bin/python bench/ingest.py [--duration 15] [--runs 1] [--collector-workers 2]

Everything runs on this machine in one go, on free ports with a temporary data directory: a
private redis-server (AOF, fsync every second), the embedded warehouse (or the ClickHouse
named by TRACKHOUSE_CLICKHOUSE_URL), ``trackhouse collector`` (uvicorn, uvloop, httptools)
and ``trackhouse worker``. Load comes from ``wrk`` (Debian package; C, one thread, so the
load generator takes little of the two cores) with Lua scripts that make every event unique
(own ``__eventId``, visitor IPs spread over a /16).

Phases and figures, all from the same run:
1. HTTP floor: a bare FastAPI endpoint answering the same JSON, served the same way.
2. ``/track`` at full speed: accepted events/s, p50/p99, and landed events/s (from the start
   of the load until ``count()`` in ClickHouse reached the accepted events).
3. ``/track`` paced near 1,000 requests/s: p50/p99, and event-to-queryable p95 (a probe event
   every 0.2 s during the load, each with an id of its own; the time from the collector's
   200 to the row being visible, polled every 50 ms).
4. ``/track/batch?import=true`` with 500 events per request (an importer with its secret;
   ``--batch-mode live``: a server-side SDK's live batches): accepted and landed events/s;
   then the same load again with probes, for the event-to-queryable p95 of live events under
   import load (imports fill a buffer lane of their own, busy, flushed every
   ``worker_busy_flush_interval_ms``; the probes' lane stays quiet and their landing jobs
   have a loop of their own). The probes cost the stack enough CPU (a poll query every 50 ms,
   four one-row inserts a second) to lower the accepted rate, hence two runs of the load.
5. Database floor: raw clickhouse-connect inserts (JSONEachRow, 20,000 rows each) of the same
   rows the collector produced, into a scratch copy of the events table.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import free_port, wait_for_http  # noqa: E402  (the test suite's helpers)

BIN = Path(sys.executable).parent
UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")
ORIGIN = "https://bench.example.com"
BATCH_ITEMS = 500


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of one process from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by a process and its live descendants (uvicorn workers)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))):
            parents[int(entry.name)], cpu[int(entry.name)] = found
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total


# As scripts/quickstart.sh starts Redis (see the README's "Redis for the buffer"): the buffer
# writes every event and drops it seconds later, so the append-only file grows fast while the
# data stays small; past the default 64 MB Redis rewrote it every ~2 s during imports.
AOF_REWRITE = ("--auto-aof-rewrite-min-size", "1gb")


def floor_app():  # noqa: ANN201 (uvicorn factory)
    """The HTTP floor: FastAPI reading a JSON body and answering like /track does."""
    # FastAPI's OpenTelemetry off, as in collector.main (not imported: the uvicorn process
    # serving this has bench/ first on its path, where warehouse.py shadows the package)
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False,
                             "operation_spans": False, "auto_configure": False})

    @app.post("/track")
    async def track(request: Request) -> Response:
        body = orjson.loads(await request.body())
        answer = {"deviceId": "0" * 32, "sessionId": str(body.get("type"))}
        return Response(orjson.dumps(answer), media_type="application/json")

    return app


LUA_PROLOGUE = """
local counter = 0
local tid = 0
function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
end
function init(args)
  prefix = "%(run)s-" .. tid .. "-"
end
"""

TRACK_LUA = LUA_PROLOGUE + """
%(delay)s
request = function()
  counter = counter + 1
  -- 5,000 visitors (IPs), each sending several events, as on a real site
  local visitor = counter %% 5000
  local ip = "81.2." .. (visitor %% 250) .. "." .. (math.floor(visitor / 250) + 1)
  local body = '{"type":"track","payload":{"name":"screen_view","properties":{"__eventId":"'
    .. prefix .. counter .. '","__path":"%(origin)s/p/' .. (counter %% 50)
    .. '?utm_source=news","__referrer":"https://www.google.com/","__title":"Page"}}}'
  local headers = {}
  headers["content-type"] = "application/json"
  headers["openpanel-client-id"] = "%(client)s"
  headers["origin"] = "%(origin)s"
  headers["x-forwarded-for"] = ip
  headers["user-agent"] = "%(ua)s"
  return wrk.format("POST", "/track", headers, body)
end
"""

BATCH_LUA = LUA_PROLOGUE + """
request = function()
  local items = {}
  for i = 1, %(items)d do
    counter = counter + 1
    items[i] = '{"type":"track","payload":{"name":"screen_view","properties":{"__eventId":"'
      .. prefix .. counter .. '","__ip":"81.2.' .. (counter %% 250) .. '.'
      .. (math.floor(counter / 250) %% 20 + 1) .. '","__path":"%(origin)s/p/'
      .. (counter %% 50) .. '"%(timestamp)s}}}'
  end
  local headers = {}
  headers["content-type"] = "application/json"
  headers["openpanel-client-id"] = "%(client)s"
  headers["openpanel-client-secret"] = "%(secret)s"
  headers["user-agent"] = "%(ua)s"
  local body = "[" .. table.concat(items, ",") .. "]"
  return wrk.format("POST", "%(batch_path)s", headers, body)
end
"""


def stop_process_groups(processes: list[subprocess.Popen], grace_s: float = 20) -> None:
    """SIGTERM each process group (last started first), SIGKILL what is still up after
    ``grace_s``."""
    for process in reversed(processes):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def bench_project(project: str) -> tuple[str, str, str]:
    """Create ``project`` with a browser client and a secret client in the metadata database;
    returns (browser client id, secret client id, its secret)."""
    from accounts import service
    from accounts.db import session_scope

    with session_scope() as session:
        service.create_project(session, name=project, project_id=project,
                               allowed_origins=[ORIGIN], mirror=False)
        browser, _ = service.create_client(session, project_id=project, with_secret=False)
        server, secret = service.create_client(session, project_id=project)
        assert secret
        return browser.id, server.id, secret


def percentile_95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 20 else float("nan")


def run_wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True).stdout

    def millis(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    # wrk prints the duration in its own units: "15.10s", "1.00m" from a minute on
    value, unit = re.search(r"requests in ([\d.]+)(ms|s|m|h),", out).groups()
    seconds = float(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = int(errors.group(1)) if errors else 0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"ok_per_s": (requests - failed) / seconds, "requests": requests, "failed": failed,
            "seconds": seconds, "p50": millis("50"), "p99": millis("99"),
            "load_generator_cores": wrk_cpu / seconds}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="trackhouse-bench-ingest-"))
        self.processes: list[subprocess.Popen] = []
        self.named: dict[str, subprocess.Popen] = {}
        self.run_id = uuid.uuid4().hex[:8]
        self.probes_accepted = 0
        # one sequence for every phase's probes: a probe id reused by a later phase would be
        # a duplicate, found at once in the warehouse (an earlier bench did that)
        self.probe_numbers = itertools.count(1)

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("ab")
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        self.named[name] = process
        return process

    def close(self) -> None:
        stop_process_groups(self.processes)
        if self.args.keep_logs:
            print(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def setup(self) -> None:
        args = self.args
        redis_port = free_port()
        redis_dir = self.tmp / "redis"
        redis_dir.mkdir()
        socket_path = redis_dir / "redis.sock"
        self.spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                             "--unixsocket", str(socket_path), "--unixsocketperm", "700",
                             "--dir", str(redis_dir), "--save", "", "--appendonly", "yes",
                             "--appendfsync", "everysec", *AOF_REWRITE], dict(os.environ))
        redis_url = (f"unix://{socket_path}?db=0" if args.redis_unix_socket
                     else f"redis://127.0.0.1:{redis_port}/0")
        env = {**os.environ, "TRACKHOUSE_DATA_DIR": str(self.tmp / "data"),
               "TRACKHOUSE_REDIS_URL": redis_url,
               "TRACKHOUSE_COLLECTOR_RATE_LIMIT_CLIENT": args.rate_limit_client,
               "TRACKHOUSE_COLLECTOR_RATE_LIMIT_IP": args.rate_limit_ip}
        if not os.environ.get("TRACKHOUSE_CLICKHOUSE_URL"):
            port = free_port()
            house = self.spawn("warehouse", [str(BIN / "trackhouse"), "warehouse", "--port",
                                             str(port), "--data-dir", str(self.tmp / "ch")], env)
            env["TRACKHOUSE_CLICKHOUSE_URL"] = f"http://127.0.0.1:{port}"
            wait_for_http(f"http://127.0.0.1:{port}/ping", 60, house)
        os.environ.update(env)
        self.env = env
        import redis

        self.redis = redis.Redis(port=redis_port)

        from accounts.db import upgrade
        from trackhouse.settings import get_settings
        from warehouse.client import warehouse
        from warehouse.migrate import migrate

        get_settings.cache_clear()
        migrate()
        upgrade()
        self.project = f"bench-{self.run_id}"
        self.browser_client, self.server_client, self.secret = bench_project(self.project)
        self.probe_client = self.browser_client
        self.ch = warehouse()
        self.collector_url = f"http://127.0.0.1:{free_port()}"
        collector = self.spawn("collector", [
            str(BIN / "trackhouse"), "collector", "--port", self.collector_url.rsplit(":", 1)[1],
            "--workers", str(args.collector_workers)], env)
        for n in range(args.workers):
            self.spawn(f"worker{n}", [str(BIN / "trackhouse"), "worker"], env)
        self.floor_url = f"http://127.0.0.1:{free_port()}"
        # served exactly as the collector is (collector.serve: a socket per worker)
        floor = self.spawn("floor", [str(BIN / "python"), "-c", (
            f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
            "from collector.serve import serve; "
            f"serve('ingest:floor_app', factory=True, host='127.0.0.1', "
            f"port={self.floor_url.rsplit(':', 1)[1]}, workers={args.collector_workers}, "
            "loop='uvloop', http='httptools', access_log=False, log_level='warning')")], env)
        wait_for_http(f"{self.collector_url}/health", 60, collector)
        wait_for_http(f"{self.floor_url}/docs", 60, floor)

    def script(self, name: str, template: str, **extra: object) -> Path:
        values = {"run": f"{self.run_id}-{name}", "client": self.browser_client,
                  "secret": self.secret, "origin": ORIGIN, "ua": UA, "items": BATCH_ITEMS,
                  "delay": "", **extra}
        path = self.tmp / f"{name}.lua"
        path.write_text(template % values)
        return path

    def landed(self) -> int:
        """Events of the run that landed, probes left out (counted as they are accepted, so
        the poll reads only the sorting key's first column, not every row's name)."""
        rows = self.ch.query("select count() from trackhouse.events where project_id = "
                             "{p:String}", parameters={"p": self.project}).result_rows
        return int(rows[0][0]) - self.probes_accepted

    def wait_landed(self, expected: int, timeout_s: float = 300) -> float:
        deadline = time.monotonic() + timeout_s
        while self.landed() < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.landed()} of {expected} events landed")
            time.sleep(0.05)
        return time.monotonic()

    def probe(self, stop: threading.Event, latencies: list[float]) -> None:
        """Send a probe event every 0.2 s; measure 200-answer -> row visible in ClickHouse.

        One poll every 50 ms asks for all the probes not yet seen at once. Each query costs
        the embedded warehouse 2-5 ms of CPU (chdb's per-query overhead), so polling each
        probe every 20 ms, as this did before, took 0.2 of the two cores from the stack under
        measurement during imports. A latency is taken when its poll returns: an upper bound,
        at most ~50 ms late."""
        from collector.identity import event_id_from_client
        from warehouse.client import warehouse

        client = warehouse()
        outstanding: dict[str, float] = {}  # row id -> when the collector answered
        next_probe = time.monotonic()
        with httpx.Client(base_url=self.collector_url) as http:
            deadline = float("inf")
            while outstanding or not stop.is_set():
                if stop.is_set():  # no new probes; give the last ones 30 s to appear
                    deadline = min(deadline, time.monotonic() + 30)
                    if time.monotonic() > deadline:
                        break
                elif time.monotonic() >= next_probe:
                    next_probe += 0.2
                    event = f"probe-{self.run_id}-{next(self.probe_numbers)}"
                    answer = http.post("/track", json={"type": "track", "payload": {
                        "name": "probe", "properties": {"__eventId": event}}}, headers={
                        "openpanel-client-id": self.probe_client, "origin": ORIGIN,
                        "user-agent": UA})
                    if answer.status_code == 200:
                        self.probes_accepted += 1
                        outstanding[event_id_from_client(self.project, event)] = time.monotonic()
                if outstanding:
                    # by the sorting key (project, day): a lookup by id alone would scan every
                    # row of the project, CPU taken from the stack measured
                    seen = client.query(
                        "select toString(id) from trackhouse.events where project_id = "
                        "{p:String} and toDate(created_at) >= yesterday() and created_at >= "
                        "now() - 300 and id in {ids:Array(UUID)}",
                        parameters={"p": self.project, "ids": list(outstanding)}).result_rows
                    now = time.monotonic()
                    for (row_id,) in seen:
                        latencies.append(now - outstanding.pop(row_id))
                stop.wait(0.05)
        client.close()

    def database_floor(self) -> float:
        """Raw inserts of the collector's own rows into a scratch copy of the events table."""
        scratch = f"trackhouse.bench_events_{self.run_id}"
        self.ch.command(f"create table {scratch} as trackhouse.events")
        try:
            data = self.ch.raw_query(
                "select * from trackhouse.events where project_id = {p:String} limit 200000 "
                "format JSONEachRow", parameters={"p": self.project})
            lines = data.rstrip(b"\n").split(b"\n")
            chunks = [b"\n".join(lines[i:i + 20_000]) for i in range(0, len(lines), 20_000)]
            started = time.monotonic()
            for n, chunk in enumerate(chunks):
                self.ch.raw_insert(scratch, insert_block=chunk, fmt="JSONEachRow",
                                   settings={"insert_deduplication_token": f"floor-{n}"})
            return len(lines) / (time.monotonic() - started)
        finally:
            self.ch.command(f"drop table {scratch}")

    def redis_usage(self) -> dict[str, float]:
        """Redis's own CPU seconds and the microseconds spent inside EVALSHA (our scripts)."""
        cpu = self.redis.info("cpu")
        scripts = self.redis.info("commandstats").get("cmdstat_evalsha", {})
        return {"cpu_s": cpu["used_cpu_user"] + cpu["used_cpu_sys"],
                "scripts_us": float(scripts.get("usec", 0))}

    def cpu(self) -> dict[str, float]:
        names = ("collector", "worker0", "redis", "warehouse", "floor")
        return {name: tree_cpu_seconds(self.named[name].pid) for name in names
                if name in self.named}

    def cpu_report(self, label: str, before: dict[str, float], seconds: float) -> str:
        after = self.cpu()
        shares = ", ".join(f"{name} {(after[name] - before[name]) / seconds:.2f}"
                           for name in after if after[name] - before[name] > 0.01)
        return f"  {label}: cores busy on average: {shares}"

    def run(self) -> dict[str, float]:
        """Run the phases, print their figures; returns the headline ones (``HEADLINES``)."""
        args = self.args
        duration = args.duration
        track_lua = self.script("track", TRACK_LUA)
        before = self.cpu()
        floor = run_wrk(self.floor_url, track_lua, duration, args.connections)
        floor_cpu = self.cpu()["floor"] - before["floor"]

        cpu_notes = []
        base = self.landed()
        before = self.cpu()
        started = time.monotonic()
        track = run_wrk(self.collector_url, self.script("track2", TRACK_LUA), duration,
                        args.connections)
        expected = base + track["requests"] - track["failed"]
        track_cpu = self.cpu()["collector"] - before["collector"]
        track_done = self.wait_landed(expected)
        track_landed_rate = (expected - base) / (track_done - started)
        cpu_notes.append(self.cpu_report("/track full speed until landed", before,
                                         track_done - started))

        # ~1,000 requests/s: 40 connections, each waiting 25 ms between requests
        latencies: list[float] = []
        stop = threading.Event()
        prober = threading.Thread(target=self.probe, args=(stop, latencies))
        prober.start()
        paced = run_wrk(self.collector_url, self.script(
            "paced", TRACK_LUA, delay="function delay() return 25 end"), duration, 40)
        stop.set()
        prober.join()

        # The batch phase runs twice: measured alone, then with probes. Each probe poll costs
        # the embedded warehouse 4-5 ms of CPU (chdb's per-query overhead; a ClickHouse
        # server answers it in a fraction of a millisecond), 20 a second: with them the
        # machine accepted 8-14% fewer events (three runs, both in each: 48.6, 48.1, 49.2 k/s
        # alone; 44.5, 41.5, 44.6 with probes), the observer's cost, not the stack's. Since
        # live events land apart from imports, the probes are also four small inserts a second
        # (and their parts to merge): 57.6-61.9 k/s alone, 43.3-46.6 k/s with probes. About
        # half of that gap is not the probes: the second load starts while the warehouse still
        # merges the first one's million rows (the same load again with one probe in all:
        # 64.2 k/s first, 56.7 k/s second; a 60-second run: 56.5 k/s).
        self.browser_client = self.server_client  # importer: the secret client
        importing = args.batch_mode == "import"

        def batch_load(name: str) -> dict[str, float]:
            return run_wrk(self.collector_url, self.script(
                name, BATCH_LUA,
                timestamp=',"__timestamp":"2026-01-01T00:00:00Z"' if importing else "",
                batch_path="/track/batch?import=true" if importing else "/track/batch"),
                duration, args.batch_connections)

        base = self.landed()
        batch_before = self.cpu()
        started = time.monotonic()
        redis_before = self.redis_usage()
        batch = batch_load("batch")
        batch_events = (batch["requests"] - batch["failed"]) * BATCH_ITEMS
        batch_accept_cpu = self.cpu()
        batch_done = self.wait_landed(base + batch_events)
        batch_landed_cpu = self.cpu()
        redis_after = self.redis_usage()
        batch_landed_rate = batch_events / (batch_done - started)
        cpu_notes.append(self.cpu_report("/track/batch until landed", batch_before,
                                         batch_done - started))

        base = self.landed()
        loaded_latencies: list[float] = []  # event-to-queryable while the batches pour in
        stop = threading.Event()
        prober = threading.Thread(target=self.probe, args=(stop, loaded_latencies))
        before, started = self.cpu(), time.monotonic()
        prober.start()
        probed = batch_load("batch-probed")
        stop.set()
        prober.join()
        probed_done = self.wait_landed(base + (probed["requests"] - probed["failed"]) * BATCH_ITEMS)
        cpu_notes.append(self.cpu_report("/track/batch with probes until landed", before,
                                         probed_done - started))
        db_floor = self.database_floor()

        p95 = percentile_95(latencies)
        loaded_p95 = percentile_95(loaded_latencies)
        print(f"\nmachine: {os.cpu_count()} cores; collector workers {args.collector_workers}, "
              f"landing workers {args.workers}, wrk 1 thread, {duration} s per phase")
        rows = [
            ("HTTP floor (bare FastAPI)", f"{floor['ok_per_s']:,.0f} req/s",
             f"p50 {floor['p50']:.1f} ms  p99 {floor['p99']:.1f} ms", ""),
            ("/track full speed", f"{track['ok_per_s']:,.0f} ev/s accepted",
             f"p50 {track['p50']:.1f} ms  p99 {track['p99']:.1f} ms",
             f"landed {track_landed_rate:,.0f} ev/s; "
             f"{track['ok_per_s'] / floor['ok_per_s']:.0%} of the HTTP floor"),
            ("/track paced (~1,000 req/s)", f"{paced['ok_per_s']:,.0f} ev/s accepted",
             f"p50 {paced['p50']:.1f} ms  p99 {paced['p99']:.1f} ms",
             f"event-to-queryable p95 {p95:.2f} s (n={len(latencies)})"),
            (f"/track/batch {args.batch_mode} ({BATCH_ITEMS}/req)",
             f"{batch_events / batch['seconds']:,.0f} ev/s accepted",
             f"p50 {batch['p50']:.1f} ms  p99 {batch['p99']:.1f} ms",
             f"landed {batch_landed_rate:,.0f} ev/s"),
            ("  the same, with probes", f"{probed['ok_per_s'] * BATCH_ITEMS:,.0f} ev/s accepted",
             f"p50 {probed['p50']:.1f} ms  p99 {probed['p99']:.1f} ms",
             f"event-to-queryable p95 {loaded_p95:.2f} s (n={len(loaded_latencies)})"),
            ("database floor (raw insert)", f"{db_floor:,.0f} rows/s", "", ""),
        ]
        for name, rate, latency, note in rows:
            print(f"{name:<30} {rate:>24}  {latency:<26} {note}")
        print("\n".join(cpu_notes))
        print(f"  load generator (wrk) cores busy: /track {track['load_generator_cores']:.2f}, "
              f"/track/batch {batch['load_generator_cores']:.2f}")
        floor_per_cpu = (floor["requests"] - floor["failed"]) / max(floor_cpu, 1e-9)
        track_per_cpu = (track["requests"] - track["failed"]) / max(track_cpu, 1e-9)
        print(f"  per CPU-second of the serving processes (independent of what else runs): "
              f"HTTP floor {floor_per_cpu:,.0f} req, /track {track_per_cpu:,.0f} events "
              f"({track_per_cpu / floor_per_cpu:.0%} of the floor)")
        stack = ("collector", "redis", "worker0", "warehouse")
        accept_cpu = batch_accept_cpu["collector"] - batch_before["collector"]
        stack_cpu = sum(batch_landed_cpu[n] - batch_before[n] for n in stack if n in batch_before)
        print(f"  /track/batch per CPU-second: {batch_events / max(accept_cpu, 1e-9):,.0f} events "
              f"accepted per collector CPU-second; {batch_events / max(stack_cpu, 1e-9):,.0f} "
              "events accepted and landed per CPU-second of collector, Redis, worker and "
              "warehouse together")
        redis_us = (redis_after["cpu_s"] - redis_before["cpu_s"]) * 1e6 / max(batch_events, 1)
        script_us = (redis_after["scripts_us"] - redis_before["scripts_us"]) / max(batch_events, 1)
        print(f"  /track/batch in Redis: {redis_us:.1f} us of Redis CPU per event, of which "
              f"{script_us:.1f} us inside the accept and claim scripts")
        failures = (track["failed"] + paced["failed"] + batch["failed"] + probed["failed"]
                    + floor["failed"])
        if failures:
            print(f"non-2xx answers: {failures} (see {self.tmp})")
        return {
            "floor": floor["ok_per_s"], "track": track["ok_per_s"],
            "share": track["ok_per_s"] / floor["ok_per_s"] * 100,
            "share_cpu": track_per_cpu / floor_per_cpu * 100, "track_landed": track_landed_rate,
            "paced_p99": paced["p99"], "e2q_paced": p95 * 1000,
            "batch": batch_events / batch["seconds"], "batch_landed": batch_landed_rate,
            "batch_probed": probed["ok_per_s"] * BATCH_ITEMS, "e2q_batch": loaded_p95 * 1000,
            "db_floor": db_floor,
        }


# (key, label, unit, the target as (at least?, value) or None)
HEADLINES = (
    ("floor", "HTTP floor", "req/s", None),
    ("track", "/track accepted", "ev/s", None),
    ("share", "/track share of the HTTP floor", "%", (True, 50)),
    ("share_cpu", "  per CPU-second", "%", None),
    ("track_landed", "/track landed", "ev/s", (True, 3000)),
    ("paced_p99", "/track paced p99", "ms", (False, 50)),
    ("e2q_paced", "event-to-queryable p95, paced", "ms", (False, 2000)),
    ("batch", "/track/batch accepted", "ev/s", (True, 50_000)),
    ("batch_landed", "/track/batch landed", "ev/s", None),
    ("batch_probed", "/track/batch accepted, with probes", "ev/s", None),
    ("e2q_batch", "event-to-queryable p95, batch load", "ms", (False, 2000)),
    ("db_floor", "database floor", "rows/s", None),
)


def summary(runs: list[dict[str, float]]) -> str:
    """Median and range of each headline figure over the runs, and how many met the target."""
    lines = [f"\nsummary of {len(runs)} runs (each on a fresh stack):",
             f"{'':<38}{'median':>10}{'min':>10}{'max':>10}   target"]
    for key, label, unit, target in HEADLINES:
        values = [run[key] for run in runs]
        figures = "".join(f"{v:>10,.0f}"
                          for v in (statistics.median(values), min(values), max(values)))
        verdict = ""
        if target is not None:
            at_least, limit = target
            met = sum((v >= limit) if at_least else (v <= limit) for v in values)
            verdict = f"{'>=' if at_least else '<='} {limit:,} {unit}: met in {met} of {len(runs)}"
        lines.append(f"{label + f' ({unit})':<38}{figures}   {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per phase")
    parser.add_argument("--runs", type=int, default=1, help="run the whole bench this many "
                        "times, each on a fresh stack, then print medians and ranges (the "
                        "machines here vary by 15%% between identical runs)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the temporary directory with every process's log")
    parser.add_argument("--redis-unix-socket", action="store_true",
                        help="collector and worker reach Redis through a Unix socket")
    parser.add_argument("--batch-mode", choices=("import", "live"), default="import",
                        help="history imports (kept timestamps) or a server-side SDK's live "
                        "batches (live sessions, like /track)")
    parser.add_argument("--batch-connections", type=int, default=8,
                        help="concurrent /track/batch requests (an importer's parallelism)")
    parser.add_argument("--collector-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="landing worker processes")
    parser.add_argument("--rate-limit-client", default="1000000/second",
                        help="collector's per-client limit ('' switches it off)")
    parser.add_argument("--rate-limit-ip", default="1000000/second",
                        help="collector's per-IP limit ('' switches it off)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    sys.path.insert(0, str(ROOT))
    runs = []
    environment = dict(os.environ)  # each run's setup points it at that run's stack
    for n in range(args.runs):
        os.environ.clear()
        os.environ.update(environment)
        if args.runs > 1:
            print(f"\n=== run {n + 1} of {args.runs} ===", flush=True)
        bench = Bench(args)
        try:
            bench.setup()
            runs.append(bench.run())
        finally:
            bench.close()
    if len(runs) > 1:
        print(summary(runs))


if __name__ == "__main__":
    main()

"""Client benchmarks: the browser tracker's size, and the Python SDK's throughput.

    .venv/bin/python bench/sdk.py [--events 200000] [--batch-size 500]

1. Size of ``sdk/tracker/dist/tracker.min.js`` (what ``/tracker.js`` serves): raw and gzipped
   (the budget is 3 KB gzipped), next to the source.
2. Python SDK into a local collector's ``POST /track/batch``: a private redis-server and a
   ``trackhouse collector`` subprocess on free ports with a temporary data directory (the
   collector only buffers in Redis, so no warehouse or worker is needed). Events/s is
   measured from the first ``track()`` call until the collector has acknowledged every
   event (``flush()`` returned, zero failures); the rate of ``track()`` calls alone is
   printed too. Rate limits are raised so the limiter is not what is measured.
3. The SDK's own ceiling, for comparison: the same run into a null endpoint (uvicorn, parses
   the batch and answers), so what the SDK costs is told apart from what the collector costs.

Wall-clock rates depend on what else the machine runs, so each run also prints CPU time per
event (SDK process; server side = collector processes + Redis, read from /proc) and the rate
those imply with both cores free.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "sdk" / "python"))
from conftest import free_port, wait_for_http  # noqa: E402  (the test suite's helpers)
from trackhouse_sdk import Trackhouse  # noqa: E402

TRACKER_SOURCE = ROOT / "sdk" / "tracker" / "tracker.js"
TRACKER_BUILD = ROOT / "sdk" / "tracker" / "dist" / "tracker.min.js"
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/130.0.0.0 Safari/537.36")


def tracker_sizes() -> None:
    for label, path in (("source", TRACKER_SOURCE), ("minified", TRACKER_BUILD)):
        raw = path.read_bytes()
        gzipped = len(gzip.compress(raw, 9))
        print(f"tracker {label:<9} {len(raw):>6} bytes raw  {gzipped:>5} bytes gzipped"
              f"  ({path.relative_to(ROOT)})")
    gzipped = len(gzip.compress(TRACKER_BUILD.read_bytes(), 9))
    print(f"tracker budget: {gzipped} / 3072 bytes gzipped -> "
          f"{'OK' if gzipped <= 3072 else 'OVER BUDGET'}")


NULL_ENDPOINT = """
import orjson, sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = orjson.dumps({"accepted": len(orjson.loads(body) if body else [])})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            loop="uvloop", http="httptools")
"""


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        grew = bool(children)
        tree |= children
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def run_sdk(label: str, api_url: str, client_id: str, secret: str | None, events: int,
            batch_size: int, senders: int, server_pids: list[int]) -> float:
    """Send ``events`` through the SDK; print and return acknowledged events/s."""
    sdk = Trackhouse(client_id, secret, api_url=api_url, batch_size=batch_size,
                     senders=senders, max_queue_size=events + 1, flush_at_exit=False)
    sdk.track("warmup", user_agent=USER_AGENT)  # authentication (argon2) is cached after
    assert sdk.flush(60) and sdk.stats.failed == 0, f"{label}: warm-up failed"
    def server_cpu_now() -> float:
        return sum(tree_cpu_seconds(pid) for pid in server_pids)

    server_cpu, sdk_cpu = server_cpu_now(), time.process_time()
    started = time.perf_counter()
    for i in range(events):
        sdk.track("order_paid", {"order": i, "amount": 4200, "currency": "EUR"},
                  profile_id=f"user-{i % 5000}", user_agent=USER_AGENT)
    queued = time.perf_counter() - started
    assert sdk.flush(600)
    elapsed = time.perf_counter() - started
    server_cpu = server_cpu_now() - server_cpu
    sdk_cpu = time.process_time() - sdk_cpu
    sdk.close()
    stats = sdk.stats
    rate = events / elapsed
    print(f"{label}: {events} events in {stats.requests - 1} requests of {batch_size}, "
          f"{senders} sender thread(s), {stats.failed} failed, {stats.retries} retries")
    print(f"{label}: track() calls {events / queued:>10,.0f} events/s; acknowledged "
          f"{rate:>10,.0f} events/s ({elapsed:.2f} s)")
    # CPU time per event does not depend on what else the machine is running: with both
    # cores free, sender and server in parallel reach about 2 / (cpu per event) events/s.
    print(f"{label}: CPU per event: server side {server_cpu / events * 1e6:.1f} us, SDK "
          f"process {sdk_cpu / events * 1e6:.1f} us -> both on 2 free cores: about "
          f"{2 * events / (server_cpu + sdk_cpu):,.0f} events/s; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return rate if stats.failed == 0 else 0.0


def sdk_throughput(events: int, batch_size: int, senders: int, collector_workers: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="trackhouse-bench-sdk-"))
    redis_port, collector_port, null_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "TRACKHOUSE_DATA_DIR": str(workdir),
        "TRACKHOUSE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TRACKHOUSE_COLLECTOR_RATE_LIMIT_CLIENT": "10000000/second",
        "TRACKHOUSE_COLLECTOR_RATE_LIMIT_IP": "10000000/second",
        "TRACKHOUSE_COLLECTOR_BACKLOG_LIMIT": str(events * 4),
    }
    os.environ.update(env)  # this process creates the project in the same metadata database
    redis_server = shutil.which("redis-server") or "redis-server"
    processes = [subprocess.Popen(
        [redis_server, "--bind", "127.0.0.1", "--port", str(redis_port), "--dir", str(workdir),
         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)]
    try:
        # 1. the SDK's own ceiling: an endpoint that only parses the batch and answers
        processes.append(subprocess.Popen([sys.executable, "-c", NULL_ENDPOINT, str(null_port)]))
        wait_for_http(f"http://127.0.0.1:{null_port}/", process=processes[-1])
        run_sdk("python sdk -> null endpoint", f"http://127.0.0.1:{null_port}", "bench", None,
                events, batch_size, senders, [processes[-1].pid])
        processes.pop().terminate()

        # 2. into the collector
        from accounts import service
        from accounts.db import session_scope, upgrade

        upgrade()
        with session_scope() as session:
            service.create_project(session, name="bench", project_id="bench", mirror=False)
            client_row, secret = service.create_client(session, project_id="bench")
            client_id = client_row.id
        log = (workdir / "collector.log").open("ab")
        processes.append(subprocess.Popen(
            [str(Path(sys.executable).parent / "trackhouse"), "collector", "--host", "127.0.0.1",
             "--port", str(collector_port), "--workers", str(collector_workers)],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        api_url = f"http://127.0.0.1:{collector_port}"
        wait_for_http(f"{api_url}/health", process=processes[-1])
        rate = run_sdk(f"python sdk -> collector ({collector_workers} worker processes)",
                       api_url, client_id, secret, events, batch_size, senders,
                       [processes[0].pid, processes[-1].pid])  # Redis and the collector
        target = 20_000
        print(f"python sdk target: >= {target:,} events/s into the collector -> "
              f"{'OK' if rate >= target else 'BELOW TARGET'}")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--senders", type=int, default=2, help="SDK sender threads")
    parser.add_argument("--collector-workers", type=int, default=2)
    args = parser.parse_args()
    tracker_sizes()
    sdk_throughput(args.events, args.batch_size, args.senders, args.collector_workers)


if __name__ == "__main__":
    main()

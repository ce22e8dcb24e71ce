"""A flood of bad credentials against a real secret client's latency (issue 15, item 3).

    .venv/bin/python bench/auth_flood.py [--duration 20] [--rate 50] [--attacker-ips 8]

The stack of bench/ingest.py (its ``Bench.setup``: a private redis-server, the embedded
warehouse or TRACKHOUSE_CLICKHOUSE_URL, ``trackhouse collector`` with 2 workers and
``trackhouse worker``, on free ports with a temporary data directory), with the collector's
default limits of failed authentication. A real server-side client (its secret verified by
its first request) sends ``/track`` at a steady rate from one thread, one request at a time:
1. idle: the client alone; p50/p99 of its requests;
2. flood: the same while ``wrk`` (C, one thread) keeps 40 connections busy with wrong
   secrets for that very client id and with unknown client ids, from ``--attacker-ips``
   addresses (x-forwarded-for; the peer, 127.0.0.1, is a trusted proxy); p50/p99 again, the
   ratio of the p99s, the flood's requests/s and its share of 429s.
Each phase also times the first request of a new secret client (database lookup and argon2,
nothing cached), the request the issue saw held for 8.27 s.

The machine has 2 cores that the collector, Redis, wrk and this script share (and, here,
other work): figures are noisy; compare the phases of one run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from ingest import UA, Bench  # noqa: E402  (bench/ingest.py's stack)

FLOOD_LUA = """
local counter = 0
local threads = {}
c401, c429, cother = 0, 0, 0
function setup(thread)
  table.insert(threads, thread)
end
request = function()
  counter = counter + 1
  local headers = {}
  headers["content-type"] = "application/json"
  headers["user-agent"] = "flood"
  headers["x-forwarded-for"] = "203.0.113." .. (counter %% %(ips)d + 1)
  if counter %% 2 == 0 then
    -- wrong secrets for the real client's id, each a new one (no verdict to reuse)
    headers["openpanel-client-id"] = "%(target)s"
    headers["openpanel-client-secret"] = "wrong-%(run)s-" .. counter
  else
    -- unknown client ids, each a new one
    headers["openpanel-client-id"] = string.format("%%08x-0000-4000-8000-%%012x",
      math.random(0, 2147483647), counter)
    headers["origin"] = "https://flood.example"
  end
  return wrk.format("POST", "/track", headers, '{"type":"track","payload":{"name":"x"}}')
end
response = function(status, headers, body)
  if status == 401 then c401 = c401 + 1
  elseif status == 429 then c429 = c429 + 1
  else cother = cother + 1 end
end
done = function(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("c401"); b = b + thread:get("c429"); c = c + thread:get("cother")
  end
  io.write(string.format("statuses 401=%%d 429=%%d other=%%d\\n", a, b, c))
end
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Steady(threading.Thread):
    """The real client: one ``/track`` request every 1/rate s (one at a time), timed."""

    def __init__(self, url: str, client_id: str, secret: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.rate = url, rate
        self.headers = {"openpanel-client-id": client_id, "openpanel-client-secret": secret,
                        "user-agent": UA, "x-forwarded-for": "198.51.100.7"}
        self.latencies: list[float] = []
        self.failures: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            next_at = time.monotonic()
            while not self.stop.is_set():
                event = {"type": "track", "payload": {"name": "steady", "properties": {
                    "__eventId": uuid.uuid4().hex}}}
                started = time.perf_counter()
                answer = http.post("/track", json=event, headers=self.headers)
                elapsed = time.perf_counter() - started
                if answer.status_code == 200:
                    self.latencies.append(elapsed)
                else:
                    self.failures.append(answer.status_code)
                next_at += 1 / self.rate
                self.stop.wait(max(0.0, next_at - time.monotonic()))


def first_request(bench: Bench) -> tuple[int, float]:
    """(status, seconds) of a new secret client's first request: nothing of it is cached."""
    from accounts import service
    from accounts.db import session_scope

    with session_scope() as session:
        client, secret = service.create_client(session, project_id=bench.project)
    assert secret is not None
    started = time.perf_counter()
    answer = httpx.post(f"{bench.collector_url}/track", timeout=60, json={
        "type": "track", "payload": {"name": "first"}}, headers={
        "openpanel-client-id": client.id, "openpanel-client-secret": secret,
        "user-agent": UA, "x-forwarded-for": "198.51.100.8"})
    return answer.status_code, time.perf_counter() - started


def phase(bench: Bench, args: argparse.Namespace, flood: bool) -> dict[str, object]:
    steady = Steady(bench.collector_url, bench.server_client, bench.secret, args.rate)
    steady.start()
    wrk: subprocess.Popen | None = None
    if flood:
        script = bench.tmp / "flood.lua"
        script.write_text(FLOOD_LUA % {"ips": args.attacker_ips, "target": bench.server_client,
                                       "run": bench.run_id})
        wrk = subprocess.Popen(
            ["wrk", "-t1", "-c40", f"-d{args.duration}s", "-s", str(script),
             bench.collector_url], stdout=subprocess.PIPE, text=True)
    time.sleep(args.duration / 2)
    first = first_request(bench)
    time.sleep(args.duration / 2)
    steady.stop.set()
    steady.join()
    result: dict[str, object] = {"latencies": steady.latencies, "failures": steady.failures,
                                 "first": first}
    if wrk is not None:
        out = wrk.communicate(timeout=120)[0]
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        seconds = float(re.search(r"requests in ([\d.]+)s", out).group(1))
        counts = dict(zip(("401", "429", "other"), map(int, re.search(
            r"statuses 401=(\d+) 429=(\d+) other=(\d+)", out).groups()), strict=True))
        result.update(flood_requests=requests, flood_rate=requests / seconds, counts=counts)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per phase")
    parser.add_argument("--rate", type=float, default=50, help="the real client's requests/s")
    parser.add_argument("--attacker-ips", type=int, default=8,
                        help="addresses the flood comes from")
    parser.add_argument("--delay-ms", type=int, default=None, help="how long a refused "
                        "request waits for its 429 (default: the setting's default)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="idle and flood phases, one after the other, this many times")
    parser.add_argument("--collector-workers", type=int, default=2)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    sys.path.insert(0, str(ROOT))
    if args.delay_ms is not None:
        os.environ["TRACKHOUSE_COLLECTOR_FAILED_AUTH_DELAY_MS"] = str(args.delay_ms)
    # Bench.setup's options: the collector's ordinary rate limits out of the way (its
    # failed-authentication limits stay at their defaults), one landing worker, TCP Redis
    stack = argparse.Namespace(
        redis_unix_socket=False, rate_limit_client="1000000/second",
        rate_limit_ip="1000000/second", collector_workers=args.collector_workers, workers=1,
        keep_logs=args.keep_logs)
    bench = Bench(stack)
    try:
        bench.setup()
        from trackhouse.settings import get_settings

        settings = get_settings()
        # the real client's secret verified once per collector process before measuring
        for _ in range(args.collector_workers * 4):
            with httpx.Client(base_url=bench.collector_url) as http:
                assert http.post("/track", json={"type": "track", "payload": {"name": "w"}},
                                 headers={"openpanel-client-id": bench.server_client,
                                          "openpanel-client-secret": bench.secret,
                                          "x-forwarded-for": "198.51.100.7"}).status_code == 200
        rounds = []
        for _ in range(args.rounds):
            rounds.append((phase(bench, args, flood=False), phase(bench, args, flood=True)))
    finally:
        bench.close()

    def line(name: str, result: dict[str, object]) -> str:
        values = result["latencies"]
        assert isinstance(values, list)
        status, seconds = result["first"]  # type: ignore[misc]
        return (f"{name:<8} n={len(values):>5}  p50 {percentile(values, 0.5) * 1000:7.2f} ms  "
                f"p99 {percentile(values, 0.99) * 1000:7.2f} ms  max "
                f"{max(values) * 1000:7.1f} ms  non-200: {len(result['failures'])}  "  # type: ignore[arg-type]
                f"new client's first request: {status} in {seconds * 1000:.0f} ms")

    print(f"\nmachine: {os.cpu_count()} cores; collector workers {args.collector_workers}; "
          f"real client {args.rate:g} req/s; flood: wrk 1 thread, 40 connections, "
          f"{args.attacker_ips} addresses; {args.duration} s per phase, {args.rounds} round(s) "
          "of idle then flood")
    if hasattr(settings, "collector_failed_auth_limit_ip"):
        print(f"failed-auth limits: {settings.collector_failed_auth_limit_ip} per IP, "
              f"{settings.collector_failed_auth_limit_client} per client id; refusals held "
              f"{settings.collector_failed_auth_delay_ms} ms")
    else:  # this script copied into an older checkout, for a before/after comparison
        print("failed-auth limits: none (code without them)")
    for n, (idle, flooded) in enumerate(rounds, start=1):
        print(line(f"idle {n}", idle))
        print(line(f"flood {n}", flooded))
    idle_all = [v for idle, _ in rounds for v in idle["latencies"]]  # type: ignore[attr-defined]
    flood_all = [v for _, f in rounds for v in f["latencies"]]  # type: ignore[attr-defined]
    idle_p99, flood_p99 = percentile(idle_all, 0.99), percentile(flood_all, 0.99)
    counts = {key: sum(f["counts"][key] for _, f in rounds)  # type: ignore[index]
              for key in ("401", "429", "other")}
    total = sum(counts.values())
    requests = sum(f["flood_requests"] for _, f in rounds)  # type: ignore[misc]
    rate = statistics.mean(f["flood_rate"] for _, f in rounds)  # type: ignore[misc]
    print(f"all rounds: idle p50 {percentile(idle_all, 0.5) * 1000:.2f} ms p99 "
          f"{idle_p99 * 1000:.2f} ms; flood p50 {percentile(flood_all, 0.5) * 1000:.2f} ms "
          f"p99 {flood_p99 * 1000:.2f} ms")
    print(f"p99 under flood / idle p99: {flood_p99 / idle_p99:.2f} (target: within 2)")
    print(f"flood: {requests:,} requests, {rate:,.0f}/s; 429: {counts['429'] / max(total, 1):.1%}"
          f", 401: {counts['401']}, other: {counts['other']}")


if __name__ == "__main__":
    main()

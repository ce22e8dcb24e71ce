"""Benchmark of the embedded warehouse endpoint against in-process chdb.

Prints, from one run:
* Native insert rows/s through the endpoint vs in-process chdb (and the ratio), and the CPU
  time each insert takes: in-process (the bench process) vs the endpoint process plus the
  client's sending. CPU time is the figure to compare on a shared, loaded machine, where
  wall-time ratios swing with the neighbours' load;
* clickhouse-connect row insert rows/s through the endpoint;
* p50/p99 latency and CPU time of a small aggregate query through the endpoint vs
  in-process, the variants taking turns query by query (a sequence of each, one after the
  other, compared the load of different minutes);
* a cancellation soak: rounds of 100 streamed queries abandoned after their first bytes, with
  the /ping latency right after, the time until system.processes is empty and the endpoint's
  thread count (which must come back to its figure after the first round).

Usage: ``.venv/bin/python bench/warehouse.py [--rows 2000000] [--queries 400]
[--soak-rounds 5]``. The endpoint runs as its own ``trackhouse warehouse`` process on a free
port with a temporary data directory; the in-process baseline is chdb (raw connection and
clickhouse-connect's ``interface='chdb'``) on another temporary directory. One call runs at a
time, so the two engines never compete for the CPU.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import chdb
import clickhouse_connect
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # after ROOT: tests/warehouse/ must not shadow the package
sys.path.append(str(ROOT / "tests" / "warehouse"))
from abandoned_streams import (  # noqa: E402  (the cancellation test's tools)
    abandon_streams,
    running_queries,
    thread_count,
    wait_until,
)
from conftest import EmbeddedWarehouse, free_port  # noqa: E402  (the test suite's helpers)

TABLE_DDL = (
    "CREATE TABLE {table} (id UInt64, name String, at DateTime64(3, 'UTC'), v Float64) "
    "ENGINE = MergeTree ORDER BY id"
)
DATA_SQL = (
    "SELECT number AS id, concat('name-', toString(number % 1000)) AS name, "
    "toDateTime64('2024-01-01 00:00:00', 3, 'UTC') + number AS at, number * 0.5 AS v "
    "FROM numbers({rows}) FORMAT Native"
)
AGGREGATE_SQL = "SELECT count(), avg(v), max(name) FROM bench.t WHERE id BETWEEN 1000 AND 20000"


def start_endpoint(data_dir: Path) -> EmbeddedWarehouse:
    """The endpoint as its own ``trackhouse warehouse`` process (the test suite's helper)."""
    env = {k: v for k, v in os.environ.items() if k != "TRACKHOUSE_CLICKHOUSE_URL"}
    env["TRACKHOUSE_DATA_DIR"] = str(data_dir)
    endpoint = EmbeddedWarehouse("127.0.0.1", free_port(), data_dir / "clickhouse",
                                 data_dir / "warehouse.log", env)
    endpoint.start()
    return endpoint


def best_of(runs: int, setup: Callable[[], None], work: Callable[[], None]) -> float:
    """The fastest of ``runs`` timed calls of ``work`` (``setup`` untimed before each)."""
    timings = []
    for _ in range(runs):
        setup()
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def own_cpu_s() -> float:
    """CPU time of this process, every thread (in-process chdb's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int) -> float:
    """CPU time of another process, every thread (from /proc; clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuTimed:
    """Wall and CPU time of repeated calls; the best wall time and the mean CPU time."""

    def __init__(self, cpu_now: Callable[[], float]) -> None:
        self.cpu_now, self.walls, self.cpus = cpu_now, [], []

    def run(self, setup: Callable[[], None], work: Callable[[], None]) -> None:
        setup()
        cpu, started = self.cpu_now(), time.perf_counter()
        work()
        self.walls.append(time.perf_counter() - started)
        self.cpus.append(self.cpu_now() - cpu)

    @property
    def best_s(self) -> float:
        return min(self.walls)

    @property
    def cpu_ms(self) -> float:
        return statistics.mean(self.cpus) * 1000


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


def interleaved_latency(
    variants: dict[str, tuple[Callable[[], object], Callable[[], float]]], count: int
) -> dict[str, tuple[float, float, float]]:
    """p50 and p99 ms and mean CPU ms per call of each variant (its run, the CPU clock of the
    process doing its work), the variants taking turns call by call so that load from
    elsewhere on the machine hits them alike."""
    for run, _ in variants.values():
        for _ in range(20):  # warm up connections and caches
            run()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    cpu = dict.fromkeys(variants, 0.0)
    for _ in range(count):
        for name, (run, cpu_now) in variants.items():
            cpu_before, started = cpu_now(), time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - started)
            cpu[name] += cpu_now() - cpu_before
    return {
        name: (*percentiles(samples[name]), cpu[name] / count * 1000) for name in variants
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows per Native insert")
    parser.add_argument("--row-insert-rows", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=400, help="queries per latency sample")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per insert figure")
    parser.add_argument("--soak-rounds", type=int, default=5, help="cancellation soak rounds")
    parser.add_argument("--soak-streams", type=int, default=100, help="abandoned per round")
    args = parser.parse_args()
    load_before = os.getloadavg()  # p50 latency follows the machine's load: printed with it

    with tempfile.TemporaryDirectory(prefix="trackhouse-bench-") as scratch:
        scratch_dir = Path(scratch)
        endpoint = start_endpoint(scratch_dir / "endpoint")
        url = endpoint.url
        try:
            local = chdb.connect(str(scratch_dir / "inprocess"))
            native = bytes(local.query(DATA_SQL.format(rows=args.rows), "Native").bytes())
            for sql in ("CREATE DATABASE IF NOT EXISTS bench", TABLE_DDL.format(table="bench.t")):
                local.query(sql)
            web = httpx.Client(base_url=url, timeout=300, headers=endpoint.auth_headers)
            for sql in ("CREATE DATABASE IF NOT EXISTS bench", TABLE_DDL.format(table="bench.t")):
                web.post("/", content=sql.encode()).raise_for_status()

            # --- Native insert -------------------------------------------------------------
            def insert_local(chunk: int) -> None:
                with local.send_insert("INSERT INTO bench.t", "Native") as inserter:
                    for offset in range(0, len(native), chunk):
                        inserter.append(native[offset : offset + chunk])
                    inserter.finish()

            host, port = url.removeprefix("http://").split(":")
            raw_http = http.client.HTTPConnection(host, int(port), timeout=300)

            def insert_endpoint() -> None:
                # http.client hands the body to one sendall(): the client's own cost stays
                # out of the figure (httpx would slice it into many small writes).
                raw_http.request(
                    "POST", "/?query=INSERT%20INTO%20bench.t%20FORMAT%20Native", body=native,
                    headers=endpoint.auth_headers,
                )
                response = raw_http.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"insert failed: {response.status}")

            # Alternate the two so that load from elsewhere on the machine hits both alike.
            # The baseline is the fastest in-process way. The runs alternate so that
            # load from elsewhere on the machine hits every variant alike.
            assert endpoint.process is not None
            server_pid = endpoint.process.pid
            chunks = (len(native), 1 << 20, 64 << 10)
            local_runs = {chunk: CpuTimed(own_cpu_s) for chunk in chunks}
            server_runs = CpuTimed(lambda: process_cpu_s(server_pid))
            client_cpu: list[float] = []

            def insert_endpoint_client_cpu() -> None:
                started = own_cpu_s()
                insert_endpoint()
                client_cpu.append(own_cpu_s() - started)

            def truncate_local() -> None:
                local.query("TRUNCATE TABLE bench.t")

            def truncate_endpoint() -> None:
                web.post("/", content=b"TRUNCATE TABLE bench.t").raise_for_status()

            for _ in range(args.runs):
                # One append of everything, 1 MiB and 64 KiB appends (chdb likes the latter).
                # The endpoint gets as many timed runs as the three variants together.
                for chunk in chunks:
                    local_runs[chunk].run(truncate_local, partial(insert_local, chunk))
                    server_runs.run(truncate_endpoint, insert_endpoint_client_cpu)
            # The baseline is the fastest variant by wall time, the cheapest by CPU time.
            local_rate = args.rows / min(runs.best_s for runs in local_runs.values())
            local_cpu_ms = min(runs.cpu_ms for runs in local_runs.values())
            endpoint_rate = args.rows / server_runs.best_s
            client_ms = statistics.mean(client_cpu) * 1000

            # --- clickhouse-connect row insert ------------------------------------------------
            client = clickhouse_connect.get_client(
                host="127.0.0.1", port=int(url.rsplit(":", 1)[1]), autogenerate_session_id=False,
                password=endpoint.password,
            )
            client.command(
                "CREATE TABLE bench.rows (id UInt64, name String, v Float64) "
                "ENGINE = MergeTree ORDER BY id"
            )
            rows = [[i, f"name-{i % 1000}", i * 0.5] for i in range(args.row_insert_rows)]
            rows_s = best_of(
                args.runs,
                lambda: client.command("TRUNCATE TABLE bench.rows"),
                lambda: client.insert("bench.rows", rows, column_names=["id", "name", "v"]),
            )

            # --- small aggregate query latency -------------------------------------------------
            local.query("INSERT INTO bench.t SELECT * FROM bench.t LIMIT 0")
            in_process_cc = clickhouse_connect.get_client(
                interface="chdb", path=str(scratch_dir / "inprocess")
            )
            server_cpu = partial(process_cpu_s, server_pid)
            queries = interleaved_latency(
                {
                    "local_raw": (lambda: local.query(AGGREGATE_SQL, "TabSeparated"), own_cpu_s),
                    "local_cc": (lambda: in_process_cc.query(AGGREGATE_SQL), own_cpu_s),
                    "endpoint_http": (
                        lambda: web.post("/", content=AGGREGATE_SQL.encode()).raise_for_status(),
                        server_cpu,
                    ),
                    "endpoint_cc": (lambda: client.query(AGGREGATE_SQL), server_cpu),
                },
                args.queries,
            )
            client.close()
            in_process_cc.close()
            web.close()
            raw_http.close()
            local.close()

            # --- cancellation soak ---------------------------------------------------------
            assert endpoint.process is not None
            pid = endpoint.process.pid
            soak = []
            auth = ("default", endpoint.password)
            for _ in range(args.soak_rounds):
                abandoned_s = abandon_streams(url, auth, args.soak_streams)
                started = time.perf_counter()
                httpx.get(f"{url}/ping", timeout=30).raise_for_status()
                ping_ms = (time.perf_counter() - started) * 1000
                drained_s = wait_until(lambda: running_queries(url, auth) == 0, 30)
                time.sleep(1)  # let finished threads exit
                soak.append((abandoned_s, ping_ms, drained_s, thread_count(pid)))
        finally:
            endpoint.stop()

    print(
        f"Native insert, {args.rows:,} rows ({len(native) / 1e6:.0f} MB), "
        f"best of {3 * args.runs} runs each:"
    )
    print(f"  in-process chdb      {local_rate:>14,.0f} rows/s")
    print(
        f"  through the endpoint {endpoint_rate:>14,.0f} rows/s   "
        f"ratio {endpoint_rate / local_rate:.0%} of in-process"
    )
    endpoint_cpu_ms = server_runs.cpu_ms + client_ms
    print(f"  CPU per insert (mean): in-process {local_cpu_ms:.0f} ms; endpoint "
          f"{server_runs.cpu_ms:.0f} ms + client sending {client_ms:.0f} ms   "
          f"ratio {local_cpu_ms / endpoint_cpu_ms:.0%} of in-process")
    print(
        f"clickhouse-connect row insert, {args.row_insert_rows:,} rows: "
        f"{args.row_insert_rows / rows_s:,.0f} rows/s (through the endpoint)"
    )
    print(
        f"small aggregate query, {args.queries} runs each, the four taking turns; p50 / p99 ms, "
        "CPU ms per query (in-process: this process; endpoint: the endpoint process):"
    )
    rows = (
        ("in-process chdb (raw)", "local_raw", None),
        ("in-process clickhouse-connect", "local_cc", None),
        ("endpoint, plain HTTP (httpx)", "endpoint_http", "local_raw"),
        ("endpoint, clickhouse-connect", "endpoint_cc", "local_cc"),
    )
    for label, name, baseline in rows:
        p50, p99, cpu_ms = queries[name]
        line = f"  {label:<31} {p50:6.2f} / {p99:6.2f}   CPU {cpu_ms:5.2f}"
        if baseline:
            line += f"   overhead p50 {p50 - queries[baseline][0]:+.2f} ms"
        print(line)
    insert_ratio = endpoint_rate / local_rate
    verdicts = [
        f"httpx {queries['endpoint_http'][0] - queries['local_raw'][0]:+.2f} ms",
        f"clickhouse-connect {queries['endpoint_cc'][0] - queries['local_cc'][0]:+.2f} ms",
    ]
    overheads_met = all(
        queries[endpoint][0] - queries[local][0] <= 2.0
        for endpoint, local in (("endpoint_http", "local_raw"), ("endpoint_cc", "local_cc"))
    )
    print(
        f"issue 16 targets: query overhead p50 <= 2 ms: {', '.join(verdicts)} "
        f"({'met' if overheads_met else 'NOT met'}); Native insert >= 70 % of in-process: "
        f"{insert_ratio:.0%} ({'met' if insert_ratio >= 0.7 else 'NOT met'}); load average "
        f"{load_before[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    print(
        f"cancellation soak, {args.soak_rounds} rounds of {args.soak_streams} streams abandoned "
        "after their first bytes:"
    )
    print("  round  open+abandon s  /ping ms  processes empty after s  threads")
    for number, (abandoned_s, ping_ms, drained_s, threads) in enumerate(soak, 1):
        print(f"  {number:5}  {abandoned_s:13.2f}  {ping_ms:8.1f}  {drained_s:23.2f}  {threads:7}")


if __name__ == "__main__":
    main()

"""Where a Native insert through the embedded warehouse endpoint spends its CPU time.

Prints, from one run, the mean CPU time of one Native insert (same rows as
``bench/warehouse.py``) for each part of the endpoint's path, the variants alternating so
that load from elsewhere on the machine hits each alike:
* in-process chdb, ``send_insert`` in 1 MiB appends (``bench/warehouse.py``'s baseline);
* in-process chdb, ``INSERT ... FROM INFILE`` a pipe that a thread fills in 256 KiB writes
  (the endpoint's engine side: the query it runs, and the pipe's copies);
* in-process chdb fed by the endpoint's own ``StreamingInsert`` from an event loop in
  256 KiB appends (the same engine side, written the endpoint's way, without HTTP);
* the HTTP body alone: the same POST into a uvicorn app on the endpoint's stack (uvloop,
  httptools, its malloc tuning) that drops the body, receiving side plus sending client;
* the endpoint itself (``trackhouse warehouse``), endpoint process plus sending client.

CPU time (every thread of the process, from getrusage or /proc) rather than wall time: the
machine is shared, and wall-time ratios follow the neighbours' load.

Usage: ``.venv/bin/python bench/warehouse_insert_costs.py [--rows 2000000] [--runs 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import chdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))
from conftest import free_port  # noqa: E402  (the test suite's helper)

from warehouse.allocator import keep_body_buffers_in_the_heap  # noqa: E402
from warehouse.streaming_insert import PIPE_BYTES, StreamingInsert  # noqa: E402

# bench/warehouse.py's data and helpers (its name is the package's, so loaded by path)
_spec = importlib.util.spec_from_file_location("bench_warehouse", ROOT / "bench" / "warehouse.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

INSERT_PATH = "/?query=INSERT%20INTO%20bench.t%20FORMAT%20Native"
BODY_CHUNK = 256 << 10  # what uvloop hands the endpoint per read


async def discard_body(scope: dict, receive: Callable, send: Callable) -> None:
    """An ASGI app that reads a request body and drops it."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def serve_discard(port: int) -> None:
    import uvicorn

    keep_body_buffers_in_the_heap()
    uvicorn.run(discard_body, host="127.0.0.1", port=port, log_level="warning",
                access_log=False, loop="auto", http="auto", timeout_keep_alive=600)


def wait_for_port(port: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=5).connect()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def post(connection: http.client.HTTPConnection, path: str, body: bytes,
         headers: dict[str, str]) -> None:
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"POST failed: {response.status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per variant")
    parser.add_argument("--serve-discard", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_discard:
        serve_discard(args.serve_discard)
        return

    with tempfile.TemporaryDirectory(prefix="trackhouse-bench-") as scratch:
        scratch_dir = Path(scratch)
        local = chdb.connect(str(scratch_dir / "inprocess"))
        native = bytes(local.query(bench.DATA_SQL.format(rows=args.rows), "Native").bytes())
        for sql in ("CREATE DATABASE bench", bench.TABLE_DDL.format(table="bench.t")):
            local.query(sql)
        endpoint = bench.start_endpoint(scratch_dir / "endpoint")
        discard_port = free_port()
        discard = subprocess.Popen(
            [sys.executable, __file__, "--serve-discard", str(discard_port)], cwd=ROOT
        )
        try:
            wait_for_port(discard_port)
            assert endpoint.process is not None
            host, port = endpoint.url.removeprefix("http://").split(":")
            to_endpoint = http.client.HTTPConnection(host, int(port), timeout=300)
            to_discard = http.client.HTTPConnection("127.0.0.1", discard_port, timeout=300)
            for sql in ("CREATE DATABASE bench", bench.TABLE_DDL.format(table="bench.t")):
                post(to_endpoint, "/", sql.encode(), endpoint.auth_headers)

            def send_insert() -> None:
                with local.send_insert("INSERT INTO bench.t", "Native") as inserter:
                    for offset in range(0, len(native), 1 << 20):
                        inserter.append(native[offset : offset + (1 << 20)])
                    inserter.finish()

            def infile_pipe() -> None:
                import fcntl

                read_fd, write_fd = os.pipe()
                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)

                def feed() -> None:
                    data = memoryview(native)
                    for offset in range(0, len(data), BODY_CHUNK):
                        part = data[offset : offset + BODY_CHUNK]
                        while part:
                            part = part[os.write(write_fd, part) :]
                    os.close(write_fd)

                writer = threading.Thread(target=feed)
                writer.start()
                local.query(
                    f"INSERT INTO bench.t FROM INFILE '/dev/fd/{read_fd}' COMPRESSION 'none' "
                    "SETTINGS input_format_parallel_parsing = 0 FORMAT Native"
                )
                writer.join()
                os.close(read_fd)

            def streaming_insert(chunk: int) -> None:
                """The endpoint's own StreamingInsert, fed from an event loop (no HTTP)."""

                async def feed() -> None:
                    async def run(sql: str) -> object:
                        return await asyncio.to_thread(local.query, sql)

                    async def cancel() -> bool:
                        return False

                    insert = StreamingInsert.start(
                        run, "INSERT INTO bench.t", "Native", {}, cancel
                    )
                    for offset in range(0, len(native), chunk):
                        await insert.append(native[offset : offset + chunk])
                    await insert.finish()

                asyncio.run(feed())

            endpoint_pid = endpoint.process.pid
            variants: dict[str, tuple[Callable[[], None], Callable[[], None], Callable[[], float]]]
            variants = {
                "in-process send_insert": (
                    lambda: local.query("TRUNCATE TABLE bench.t"), send_insert, lambda: 0.0),
                "in-process INFILE pipe": (
                    lambda: local.query("TRUNCATE TABLE bench.t"), infile_pipe, lambda: 0.0),
                "StreamingInsert, loop": (
                    lambda: local.query("TRUNCATE TABLE bench.t"),
                    lambda: streaming_insert(BODY_CHUNK), lambda: 0.0),
                "HTTP body only": (
                    lambda: None,
                    lambda: post(to_discard, "/", native, {}),
                    lambda: bench.process_cpu_s(discard.pid)),
                "endpoint": (
                    lambda: post(to_endpoint, "/", b"TRUNCATE TABLE bench.t",
                                 endpoint.auth_headers),
                    lambda: post(to_endpoint, INSERT_PATH, native, endpoint.auth_headers),
                    lambda: bench.process_cpu_s(endpoint_pid)),
            }
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            for run in range(args.runs + 1):  # the first round warms up
                for name, (setup, work, server_cpu) in variants.items():
                    setup()
                    own, server = bench.own_cpu_s(), server_cpu()
                    work()
                    if run:
                        cpu[name].append(bench.own_cpu_s() - own + server_cpu() - server)
        finally:
            discard.terminate()
            discard.wait()
            endpoint.stop()

    mean_ms = {name: statistics.mean(samples) * 1000 for name, samples in cpu.items()}
    baseline = mean_ms["in-process send_insert"]
    print(f"Native insert, {args.rows:,} rows ({len(native) / 1e6:.0f} MB): mean CPU ms per "
          f"insert over {args.runs} alternating runs (every thread; servers plus client)")
    for name, value in mean_ms.items():
        print(f"  {name:24s} {value:7.1f}   baseline / this {baseline / value:5.0%}")
    floor = mean_ms["in-process INFILE pipe"] + mean_ms["HTTP body only"]
    print(f"  engine side + HTTP body {floor:7.1f}   baseline / this {baseline / floor:5.0%}"
          "   (the endpoint's design, without its own glue)")
    print(f"  endpoint glue           {mean_ms['endpoint'] - floor:+7.1f}")


if __name__ == "__main__":
    main()

"""Abandoned streamed queries against an endpoint: the cancellation test's and bench's tools."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ENDLESS = b"SELECT number FROM numbers(10000000000)"
STREAMS = 100


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def python_thread_count(pid: int) -> int:
    """Threads named like the process's main thread: Python's (the engine names its own)."""
    tasks = Path(f"/proc/{pid}/task")
    main = (tasks / str(pid) / "comm").read_text()
    count = 0
    for task in tasks.iterdir():
        try:
            count += (task / "comm").read_text() == main
        except OSError:  # the thread ended meanwhile
            pass
    return count


def send_query(
    url: str, auth: tuple[str, str], sql: bytes, query_string: str = "wait_end_of_query=0"
) -> socket.socket:
    """POST ``sql`` on a raw socket (closing it is how the client goes away)."""
    host, port = url.removeprefix("http://").split(":")
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.sendall(
        f"POST /?{query_string} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
        + f"Authorization: Basic {token}\r\nContent-Length: {len(sql)}\r\n\r\n".encode()
        + sql
    )
    return connection


def open_stream(url: str, auth: tuple[str, str], sql: bytes = ENDLESS) -> socket.socket:
    """Send a streamed query and read until its first body bytes have arrived."""
    connection = send_query(url, auth, sql)
    received = b""
    while b"\r\n\r\n" not in received or len(received) <= received.index(b"\r\n\r\n") + 4:
        chunk = connection.recv(65536)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    return connection


def abandon_streams(url: str, auth: tuple[str, str], count: int = STREAMS) -> float:
    """Open ``count`` streams at once, read their first bytes, close them all; seconds taken."""
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        connections = list(pool.map(lambda _: open_stream(url, auth), range(count)))
    for connection in connections:
        connection.close()
    return time.monotonic() - started


def running_queries(url: str, auth: tuple[str, str]) -> int:
    answer = httpx.post(
        url,
        content=b"SELECT count() FROM system.processes WHERE query NOT LIKE '%system.processes%'",
        auth=auth,
        timeout=10,
    )
    answer.raise_for_status()
    return int(answer.text)


def wait_until(check: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``check`` held (raises after ``timeout_s``)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.1)
    return time.monotonic() - started

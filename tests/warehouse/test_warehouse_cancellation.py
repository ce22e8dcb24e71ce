"""Cancellation cannot hang the endpoint: abandoned streams end, and nothing is lost.

A client that reads the first bytes of a long streamed result and closes the socket must
not leave its query running, block another cancellation, or keep one of the endpoint's
threads. Runs on an endpoint of its own (its process's thread count is part of the check).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from abandoned_streams import (
    abandon_streams,
    open_stream,
    python_thread_count,
    running_queries,
    send_query,
    wait_until,
)

WORKERS, CONTROL_WORKERS = 64, 4  # warehouse.server.WarehouseApp's thread pools


@pytest.mark.embedded_only
def test_hundred_abandoned_streams_leave_nothing_behind(
    private_warehouse: Callable[..., Any], credentials: tuple[str, str]
) -> None:
    endpoint = private_warehouse()
    pid = endpoint.process.pid
    python_threads = python_thread_count(pid)
    for _ in range(3):
        abandon_streams(endpoint.url, credentials)
        started = time.monotonic()
        assert httpx.get(f"{endpoint.url}/ping", timeout=5).text == "Ok.\n"
        # "At once": 0.2-0.8 s on a 2-core machine busy with other suites, a hang is endless
        assert time.monotonic() - started < 2, "ping waited behind the cancellations"
        wait_until(lambda: running_queries(endpoint.url, credentials) == 0, 10)
    # No worker thread is lost: the endpoint's pools keep idle threads (its 64 workers and 4
    # for cancellations; the engine's own pool), so the count plateaus rather than returning
    # to its idle figure, but every worker takes a new query at once.
    assert python_thread_count(pid) <= python_threads + WORKERS + CONTROL_WORKERS
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(
                    endpoint.url, content=b"SELECT sleep(1)", auth=credentials, timeout=30
                ),
                range(WORKERS),
            )
        )
    assert [a.status_code for a in answers] == [200] * WORKERS
    assert time.monotonic() - started < 8, "some workers were still taken"
    with httpx.stream(
        "POST", endpoint.url, content=b"SELECT number FROM numbers(100000)", auth=credentials,
        timeout=30,
    ) as answer:
        assert sum(chunk.count(b"\n") for chunk in answer.iter_raw()) == 100_000


@pytest.mark.embedded_only
def test_abandoned_slow_stream_and_statement_end(
    private_warehouse: Callable[..., Any], credentials: tuple[str, str]
) -> None:
    """A stream waiting on a slow engine, and a query that returns nothing until it ends."""
    endpoint = private_warehouse()
    slow = open_stream(
        endpoint.url,
        credentials,
        b"SELECT sleepEachRow(0.5), number FROM numbers(1000) SETTINGS max_block_size = 1",
    )
    slow.close()
    sql = b"SELECT count() FROM numbers(100000000000) WHERE NOT ignore(sipHash64(number))"
    blocked = send_query(endpoint.url, credentials, sql, "max_threads=1")
    wait_until(lambda: running_queries(endpoint.url, credentials) >= 1, 10)
    blocked.close()
    assert wait_until(lambda: running_queries(endpoint.url, credentials) == 0, 10) < 10

"""Several clients at once: a writer and readers, long queries, busy sessions, cancellation."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from trackhouse.settings import PROJECT_ROOT

# A scan long enough to outlast the checks below, on one thread so it spares the CPU.
LONG_SCAN = "SELECT count() FROM numbers(100000000000) WHERE NOT ignore(sipHash64(number))"


def test_writer_and_readers_counts_never_go_down(
    make_client: Callable[..., Client], ch: Client, scratch_db: str
) -> None:
    table = f"{scratch_db}.events"
    ch.command(f"CREATE TABLE {table} (id UInt64, batch UInt32) ENGINE = MergeTree ORDER BY id")
    batches, batch_size = 30, 500
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        writer = make_client()
        try:
            for batch in range(batches):
                rows = [[batch * batch_size + i, batch] for i in range(batch_size)]
                writer.insert(table, rows, column_names=["id", "batch"])
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    def read() -> list[int]:
        reader = make_client()
        seen = []
        while not done.is_set():
            seen.append(reader.command(f"SELECT count() FROM {table}"))
            reader.query(f"SELECT batch, count() FROM {table} GROUP BY batch ORDER BY batch")
        seen.append(reader.command(f"SELECT count() FROM {table}"))
        return seen

    with ThreadPoolExecutor(4) as pool:
        readers = [pool.submit(read) for _ in range(3)]
        write()
        observed = [future.result(timeout=120) for future in readers]
    assert not errors
    for seen in observed:
        assert seen == sorted(seen), "a reader saw the row count go down"
        assert seen[-1] == batches * batch_size
        assert all(count % batch_size == 0 for count in seen), "a reader saw half an insert"


def test_long_query_blocks_neither_ping_nor_other_clients(
    warehouse_url: str, make_client: Callable[..., Client]
) -> None:
    slow = make_client(send_receive_timeout=60)
    outcome: list[object] = []

    def run_slow() -> None:
        try:
            outcome.append(
                slow.command(LONG_SCAN, settings={"max_threads": 1, "max_execution_time": 3})
            )
        except DatabaseError as error:
            outcome.append(error)

    thread = threading.Thread(target=run_slow)
    thread.start()
    time.sleep(0.5)
    other = make_client()
    for _ in range(5):
        started = time.monotonic()
        assert httpx.get(f"{warehouse_url}/ping", timeout=5).text == "Ok.\n"
        assert other.command("SELECT 1") == 1
        assert time.monotonic() - started < 1.0
    thread.join(30)
    # max_execution_time stopped the scan with ClickHouse's TIMEOUT_EXCEEDED.
    assert len(outcome) == 1 and isinstance(outcome[0], DatabaseError)
    assert "159" in str(outcome[0]) or "TIMEOUT_EXCEEDED" in str(outcome[0])


def test_memory_limit_applies(ch: Client) -> None:
    with pytest.raises(DatabaseError) as failure:
        ch.query(
            "SELECT number % 1000000 AS k, groupArray(number) FROM numbers(5000000) GROUP BY k",
            settings={"max_memory_usage": 20_000_000, "max_threads": 1},
        )
    assert "241" in str(failure.value) or "MEMORY_LIMIT_EXCEEDED" in str(failure.value)
    assert ch.command("SELECT 1") == 1


def test_concurrent_use_of_one_session_is_refused(
    make_client: Callable[..., Client], warehouse_url: str, credentials: tuple[str, str]
) -> None:
    session_id = f"busy-{uuid.uuid4().hex}"
    busy = make_client(session_id=session_id, send_receive_timeout=60)
    thread = threading.Thread(target=busy.command, args=("SELECT sleep(2)",))
    thread.start()
    time.sleep(0.5)
    response = httpx.post(
        warehouse_url,
        params={"session_id": session_id},
        content=b"SELECT 1",
        auth=credentials,
        timeout=10,
    )
    assert response.status_code not in (200, 429, 503, 504)
    assert response.headers["X-ClickHouse-Exception-Code"] == "373"
    assert "SESSION_IS_LOCKED" in response.text
    thread.join(30)
    assert busy.command("SELECT 2") == 2  # free again once the first query ended


def test_idle_session_expires(warehouse_url: str, credentials: tuple[str, str]) -> None:
    session = {"session_id": f"short-{uuid.uuid4().hex}", "session_timeout": "1"}
    created = httpx.post(
        warehouse_url,
        params=session,
        auth=credentials,
        timeout=10,
        content=b"CREATE TEMPORARY TABLE keep_me (x UInt8)",
    )
    assert created.status_code == 200, created.text
    time.sleep(3.5)
    gone = httpx.post(
        warehouse_url,
        params={**session, "session_check": "1"},
        auth=credentials,
        content=b"SELECT count() FROM keep_me",
        timeout=10,
    )
    assert gone.status_code != 200
    assert gone.headers["X-ClickHouse-Exception-Code"] in ("372", "60")


def test_client_disconnect_cancels_its_query(
    warehouse_url: str, ch: Client, credentials: tuple[str, str]
) -> None:
    marker = f"cancel_me_{uuid.uuid4().hex}"
    sql = LONG_SCAN.replace("SELECT count()", f"SELECT /* {marker} */ count()")
    params = {"max_threads": "1", "cancel_http_readonly_queries_on_client_close": "1"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            warehouse_url,
            params=params,
            content=sql.encode(),
            auth=credentials,
            timeout=httpx.Timeout(10, read=1.0),
        )
    running = (
        f"SELECT count() FROM system.processes WHERE query LIKE '%{marker}%' "
        "AND query NOT LIKE '%system.processes%'"
    )
    deadline = time.monotonic() + 10
    while ch.command(running) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ch.command(running) == 0, "the abandoned query is still running"


POOL_SCRIPT = """
import sys
from warehouse.sessions import Engine
engine = Engine(sys.argv[1], max_idle_connections=2)
plain, tuned = {}, {"max_threads": "1"}
first = engine.acquire("", plain)
engine.give_back(first)
second = engine.acquire("", tuned)  # a new connection: first keeps its settings
assert second is not first and first.settings == {}, (first.settings, second.settings)
engine.give_back(second)
for _ in range(3):  # clients taking turns: both kinds are pool hits
    for settings, expected in ((plain, first), (tuned, second)):
        connection = engine.take_idle("", settings)
        assert connection is expected, settings
        engine.give_back(connection)
full = engine.acquire("", {"max_threads": "3"})  # pool full: the oldest idle one is adjusted
assert full is first and full.settings == {"max_threads": "3"}, full.settings
engine.close()
print("ok")
"""


def test_pool_keeps_a_connection_per_kind_of_request(tmp_path: Path) -> None:
    """Clients with different settings taking turns (a dashboard and dbt, say) each find a
    pooled connection of their own rather than re-setting one connection per request."""
    done = subprocess.run(
        [sys.executable, "-c", POOL_SCRIPT, str(tmp_path / "chdb")],
        capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT, check=False,
    )
    assert done.stdout.strip() == "ok", done.stderr

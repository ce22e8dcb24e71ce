"""A large plain insert body goes from the client's socket into the engine (ADR 0032).

The endpoint takes the rest of an identity-encoded body of known length (1 MiB and more) from
the socket with splice(2) instead of uvicorn's messages, and closes the connection after the
answer (``Connection: close`` shows the path was taken). The rows must arrive byte for byte,
a failure in the middle must still get ClickHouse's answer, and a client that leaves halfway
must have stored nothing and left nothing running.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from clickhouse_connect.driver.client import Client

pytestmark = pytest.mark.embedded_only

ROWS = 200_000  # about 6 MB of JSONEachRow


def json_rows(count: int, bad_at: int | None = None) -> bytes:
    return b"".join(
        b'{"n": %s, "s": "row %d"}\n' % (b'"oops"' if n == bad_at else b"%d" % n, n)
        for n in range(count)
    )


@contextlib.contextmanager
def raw_request(
    url: str, credentials: tuple[str, str], table: str, length: int
) -> Iterator[socket.socket]:
    """A socket on which an insert's request head has been sent; the body is the caller's."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    token = base64.b64encode(":".join(credentials).encode()).decode()
    query = urllib.parse.quote(f"INSERT INTO {table} FORMAT JSONEachRow")
    with socket.create_connection((host, int(port)), timeout=60) as client:
        client.sendall(
            f"POST /?query={query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Basic {token}\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        yield client


@pytest.fixture
def table(ch: Client, scratch_db: str) -> Iterator[str]:
    name = f"{scratch_db}.t_{uuid.uuid4().hex[:8]}"
    ch.command(f"CREATE TABLE {name} (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
    yield name


@pytest.fixture
def insert(warehouse_url: str, credentials: tuple[str, str]) -> Callable[..., httpx.Response]:
    def post(table: str, body: bytes, **headers: str) -> httpx.Response:
        return httpx.post(
            warehouse_url,
            params={"query": f"INSERT INTO {table} FORMAT JSONEachRow"},
            content=body,
            headers=headers,
            auth=credentials,
            timeout=120,
        )

    return post


def test_large_plain_body_arrives_exactly_and_closes_the_connection(
    table: str, insert: Callable[..., httpx.Response], ch: Client
) -> None:
    response = insert(table, json_rows(ROWS))
    assert response.status_code == 200, response.text
    assert response.headers.get("connection") == "close"
    assert json.loads(response.headers["X-ClickHouse-Summary"])["written_rows"] == str(ROWS)
    stored = ch.query(f"SELECT count(), sum(n), sum(cityHash64(s)) FROM {table}").result_rows
    expected = ch.query(
        f"SELECT count(), sum(number), sum(cityHash64(concat('row ', toString(number)))) "
        f"FROM numbers({ROWS})"
    ).result_rows
    assert stored == expected


def test_small_and_compressed_bodies_keep_the_connection(
    table: str, insert: Callable[..., httpx.Response], ch: Client
) -> None:
    small = insert(table, json_rows(1_000))
    assert small.status_code == 200 and small.headers.get("connection") != "close"
    packed = insert(table, gzip.compress(json_rows(ROWS), 1), **{"Content-Encoding": "gzip"})
    assert packed.status_code == 200 and packed.headers.get("connection") != "close"
    assert ch.command(f"SELECT count() FROM {table}") == 1_000 + ROWS


def test_parse_error_mid_body_answers_the_error_and_stores_nothing(
    warehouse_url: str, credentials: tuple[str, str], table: str, ch: Client
) -> None:
    """The engine stops reading at the bad row; the rest of the body is read and dropped, so
    the client's send completes and the answer reaches it (a socket closed with unread data
    resets the connection: the send failed with ECONNRESET before the drain)."""
    rows = json_rows(5 * ROWS, bad_at=ROWS // 4)
    with raw_request(warehouse_url, credentials, table, len(rows)) as client:
        client.sendall(rows)
        answer = b""
        while b"\r\n\r\n" not in answer and (piece := client.recv(65536)):
            answer += piece
    head = answer.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 400"), head
    assert "x-clickhouse-exception-code: 27" in head
    assert "connection: close" in head
    assert ch.command(f"SELECT count() FROM {table}") == 0


def test_client_gone_mid_body_stores_nothing_and_leaves_nothing_running(
    warehouse_url: str, credentials: tuple[str, str], table: str, ch: Client
) -> None:
    rows = json_rows(ROWS)
    with raw_request(warehouse_url, credentials, table, len(rows)) as client:
        client.sendall(rows[: len(rows) // 2])
        time.sleep(1.0)  # the first half reaches the engine; the second never comes
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # a wrongly committed insert would show up meanwhile
        assert ch.command(f"SELECT count() FROM {table}") == 0
        time.sleep(0.25)
    running = ch.command(
        f"SELECT count() FROM system.processes WHERE query LIKE '%INSERT INTO {table}%' "
        "AND query NOT LIKE '%system.processes%'"
    )
    assert running == 0
    assert httpx.get(f"{warehouse_url}/ping", timeout=5).text == "Ok.\n"

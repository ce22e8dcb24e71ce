"""Answers written by the worker thread straight to the client's socket (ADR 0035): framed as
uvicorn frames them, in order on a kept-alive connection, closed where HTTP says so."""

from __future__ import annotations

import base64
import socket
from typing import BinaryIO

import httpx
import pytest
from abandoned_streams import open_stream


def request(host: str, sql: bytes, auth: tuple[str, str], query: str = "", version: str = "1.1"
            ) -> bytes:
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return (
        f"POST /?{query} HTTP/{version}\r\nHost: {host}\r\nAuthorization: Basic {token}\r\n"
        f"Content-Length: {len(sql)}\r\n\r\n"
    ).encode() + sql


def read_answer(reader: BinaryIO) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Status line, headers and the de-chunked body of one answer."""
    status = reader.readline().rstrip(b"\r\n")
    headers: dict[bytes, bytes] = {}
    while line := reader.readline().rstrip(b"\r\n"):
        name, _, value = line.partition(b": ")
        headers[name.lower()] = value
    assert headers.get(b"transfer-encoding") == b"chunked", (status, headers)
    body = b""
    while size := int(reader.readline().strip(), 16):
        body += reader.read(size)
        assert reader.read(2) == b"\r\n"
    assert reader.read(2) == b"\r\n"  # after the last (empty) chunk
    return status, headers, body


@pytest.fixture
def raw(warehouse_url: str, credentials: tuple[str, str]):  # type: ignore[no-untyped-def]
    host, port = warehouse_url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=30)
    yield connection, f"{host}:{port}", credentials
    connection.close()


def test_pipelined_answers_come_in_order_on_one_connection(raw) -> None:  # type: ignore[no-untyped-def]
    """Three requests in one write: a streamed one, a buffered one (wait_end_of_query) and one
    the engine runs whole; each answer is complete and the connection stays open."""
    connection, host, auth = raw
    connection.sendall(
        request(host, b"SELECT 'streamed', number FROM numbers(3)", auth, "wait_end_of_query=0")
        + request(host, b"SELECT 'buffered'", auth, "wait_end_of_query=1")
        + request(host, b"SELECT 'whole' FORMAT JSONCompact", auth)
    )
    reader = connection.makefile("rb")
    answers = [read_answer(reader) for _ in range(3)]
    assert [status for status, _, _ in answers] == [b"HTTP/1.1 200 OK"] * 3
    assert answers[0][2] == b"streamed\t0\nstreamed\t1\nstreamed\t2\n"
    assert answers[1][2] == b"buffered\n"
    assert b'"whole"' in answers[2][2]
    for _, headers, _ in answers:
        # uvicorn's own headers and ClickHouse's, whichever thread wrote the answer
        assert {b"date", b"server", b"x-clickhouse-query-id", b"x-clickhouse-summary"} <= set(
            headers
        ), headers
        assert b"connection" not in headers
    connection.sendall(request(host, b"SELECT 'again'", auth))
    assert read_answer(reader)[2] == b"again\n"


def test_http_1_0_answer_closes_the_connection(raw) -> None:  # type: ignore[no-untyped-def]
    connection, host, auth = raw
    connection.sendall(request(host, b"SELECT 'once'", auth, version="1.0"))
    reader = connection.makefile("rb")
    _, headers, body = read_answer(reader)
    assert body == b"once\n"
    assert headers[b"connection"] == b"close"
    assert reader.read() == b""  # closed by the server


def test_slow_reader_gets_a_large_result_whole(raw) -> None:  # type: ignore[no-untyped-def]
    """A result many times the socket's buffer: the writer waits for the client without a
    thread and resumes where it stopped, byte for byte."""
    connection, host, auth = raw
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
    sql = b"SELECT number, repeat('x', 100) FROM numbers(200000)"
    connection.sendall(request(host, sql, auth, "wait_end_of_query=0"))
    reader = connection.makefile("rb", buffering=4096)
    _, _, body = read_answer(reader)
    lines = body.splitlines()
    assert len(lines) == 200000
    assert lines[0] == b"0\t" + b"x" * 100 and lines[-1] == b"199999\t" + b"x" * 100


def test_client_gone_mid_answer_frees_the_connection_slot(
    warehouse_url: str, credentials: tuple[str, str], raw  # type: ignore[no-untyped-def]
) -> None:
    """A client that leaves while its socket is full: the next requests are answered."""
    open_stream(warehouse_url, credentials).close()
    connection, host, auth = raw
    connection.sendall(request(host, b"SELECT 'after'", auth))
    assert read_answer(connection.makefile("rb"))[2] == b"after\n"


def test_head_and_compressed_answers(warehouse_url: str, credentials: tuple[str, str]) -> None:
    """HEAD keeps uvicorn's path (no body); a compressed answer from the worker decodes."""
    with httpx.Client(base_url=warehouse_url, auth=credentials, timeout=30) as client:
        head = client.head("/", params={"query": "SELECT 1"})
        assert head.status_code == 200 and head.content == b""
        packed = client.post(
            "/", params={"enable_http_compression": "1"}, content=b"SELECT number FROM numbers(5)",
            headers={"Accept-Encoding": "gzip"},
        )
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.text == "0\n1\n2\n3\n4\n"
        assert client.post("/", content=b"SELECT 'same connection'").text == "same connection\n"

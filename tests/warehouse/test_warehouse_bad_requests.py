"""Bad requests get a ClickHouse-shaped error and the endpoint stays up.

A ClickHouse-shaped error: a non-2xx status that clients do not retry (never 429/503/504),
the ``X-ClickHouse-Exception-Code`` header and a body ``Code: N. DB::Exception: ... (NAME)``.
"""

from __future__ import annotations

import gzip
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client

ERROR_BODY = re.compile(r"^Code: (\d+)\. DB::Exception: .+ \(([A-Z0-9_]+)\)", re.S)


def assert_clickhouse_error(response: httpx.Response, code: int | None = None) -> str:
    assert 400 <= response.status_code < 600, response.status_code
    assert response.status_code not in (429, 503, 504)
    match = ERROR_BODY.match(response.text)
    assert match, response.text
    assert response.headers["X-ClickHouse-Exception-Code"] == match.group(1)
    if code is not None:
        assert int(match.group(1)) == code, response.text
    return match.group(2)


@pytest.fixture
def post(warehouse_url: str, credentials: tuple[str, str]) -> Callable[..., httpx.Response]:
    user, password = credentials

    def send(
        body: bytes | str, *, headers: dict[str, str] | None = None, **params: str
    ) -> httpx.Response:
        data = body.encode() if isinstance(body, str) else body
        all_headers = {"X-ClickHouse-User": user, "X-ClickHouse-Key": password, **(headers or {})}
        return httpx.post(
            warehouse_url, params=params, content=data, headers=all_headers, timeout=30
        )

    return send


@pytest.fixture(autouse=True)
def endpoint_stays_up(warehouse_url: str, ch: Client) -> Any:
    yield
    assert httpx.get(f"{warehouse_url}/ping", timeout=5).text == "Ok.\n"
    assert ch.command("SELECT 1") == 1


@pytest.fixture
def target(ch: Client, scratch_db: str) -> str:
    ch.command(f"CREATE TABLE {scratch_db}.t (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
    return f"{scratch_db}.t"


def test_malformed_sql(post: Callable[..., httpx.Response]) -> None:
    assert assert_clickhouse_error(post("SELEC 1 FROM"), 62) == "SYNTAX_ERROR"
    assert post("SELEC 1").status_code == 400


def test_unknown_table_and_empty_query(post: Callable[..., httpx.Response]) -> None:
    assert assert_clickhouse_error(post("SELECT * FROM default.missing_table_x"), 60)
    assert_clickhouse_error(post(""))


def test_unknown_output_and_input_format(post: Callable[..., httpx.Response], target: str) -> None:
    assert assert_clickhouse_error(post("SELECT 1 FORMAT NoSuchFormat"), 73) == "UNKNOWN_FORMAT"
    assert_clickhouse_error(post(f"INSERT INTO {target} FORMAT NoSuchFormat\n1,a\n"), 73)


def test_truncated_native_body_inserts_nothing(
    post: Callable[..., httpx.Response], ch: Client, target: str
) -> None:
    native = ch.raw_query(
        "SELECT number AS id, toString(number) AS s FROM numbers(1000) FORMAT Native"
    )
    response = post(f"INSERT INTO {target} FORMAT Native\n".encode() + native[:-7])
    assert_clickhouse_error(response)
    assert ch.command(f"SELECT count() FROM {target}") == 0
    ok = post(f"INSERT INTO {target} FORMAT Native\n".encode() + native)
    assert ok.status_code == 200, ok.text
    assert ch.command(f"SELECT count() FROM {target}") == 1000


def test_bad_rows_in_text_formats(
    post: Callable[..., httpx.Response], ch: Client, target: str
) -> None:
    assert_clickhouse_error(post(f"INSERT INTO {target} FORMAT CSV\nnot-a-number,a\n"))
    assert_clickhouse_error(post(f'INSERT INTO {target} FORMAT JSONEachRow\n{{"id": [}}\n'))
    assert ch.command(f"SELECT count() FROM {target}") == 0


def test_corrupt_compressed_body(post: Callable[..., httpx.Response], target: str) -> None:
    body = gzip.compress(f"INSERT INTO {target} FORMAT CSV\n1,a\n".encode())
    assert_clickhouse_error(
        post(body[: len(body) // 2] + b"garbage", headers={"Content-Encoding": "gzip"})
    )
    assert_clickhouse_error(post(b"\x00not lz4 at all", headers={"Content-Encoding": "lz4"}))


def test_unknown_session(post: Callable[..., httpx.Response]) -> None:
    response = post("SELECT 1", session_id=f"missing-{uuid.uuid4()}", session_check="1")
    assert assert_clickhouse_error(response, 372) == "SESSION_NOT_FOUND"


def test_wrong_password(warehouse_url: str, credentials: tuple[str, str]) -> None:
    user, password = credentials
    wrong = password + "-wrong-" + uuid.uuid4().hex
    by_header = httpx.post(
        warehouse_url,
        content=b"SELECT 1",
        timeout=10,
        headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": wrong},
    )
    assert assert_clickhouse_error(by_header, 516) == "AUTHENTICATION_FAILED"
    by_basic_auth = httpx.post(warehouse_url, content=b"SELECT 1", auth=(user, wrong), timeout=10)
    assert_clickhouse_error(by_basic_auth, 516)


def test_invalid_setting_value(post: Callable[..., httpx.Response]) -> None:
    assert_clickhouse_error(post("SELECT 1", max_threads="many"))
    assert_clickhouse_error(post("SELECT 1", no_such_setting_xyz="1"), 115)


@pytest.mark.embedded_only
def test_oversized_body_and_password(private_warehouse: Callable[..., Any]) -> None:
    instance = private_warehouse(warehouse_max_body_bytes="4096", clickhouse_password="s3cret")
    auth = ("default", "s3cret")
    too_big = httpx.post(
        instance.url, content=b"SELECT '" + b"x" * 10_000 + b"'", auth=auth, timeout=10
    )
    assert assert_clickhouse_error(too_big) == "QUERY_IS_TOO_LARGE"
    assert too_big.status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit must hold while streaming
        yield b"SELECT '"
        for _ in range(10):
            yield b"y" * 1000
        yield b"'"

    streamed = httpx.post(instance.url, content=chunks(), auth=auth, timeout=10)
    assert assert_clickhouse_error(streamed) == "QUERY_IS_TOO_LARGE"
    assert_clickhouse_error(httpx.post(instance.url, content=b"SELECT 1", timeout=10), 516)
    assert_clickhouse_error(
        httpx.post(instance.url, content=b"SELECT 1", auth=("default", "no"), timeout=10), 516
    )
    fine = httpx.post(instance.url, content=b"SELECT 1", auth=auth, timeout=10)
    assert fine.status_code == 200 and fine.text == "1\n"
    assert httpx.get(f"{instance.url}/ping", timeout=5).text == "Ok.\n"


def test_multi_statements_are_refused(post: Callable[..., httpx.Response], target: str) -> None:
    for _ in range(2):  # the second time from the remembered classification
        response = post(f"INSERT INTO {target} VALUES (1, 'a'); DROP TABLE {target}")
        assert assert_clickhouse_error(response, 62) == "SYNTAX_ERROR"
        assert post(f"SELECT count() FROM {target}").text == "0\n"


def test_get_is_readonly(warehouse_url: str, credentials: tuple[str, str], target: str) -> None:
    def get(sql: str) -> httpx.Response:
        return httpx.get(warehouse_url, params={"query": sql}, auth=credentials, timeout=10)

    for _ in range(2):  # the second time from the remembered classification
        assert get(f"SELECT count() FROM {target}").text == "0\n"
        assert assert_clickhouse_error(get(f"INSERT INTO {target} VALUES (1, 'a')")) == "READONLY"
        assert assert_clickhouse_error(get(f"DROP TABLE {target}")) == "READONLY"

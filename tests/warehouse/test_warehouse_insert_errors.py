"""An INSERT that fails answers the ClickHouse error on every way its data can arrive.

Each failure below is raised by a different part of the engine (the partition check and the
constraint check when the block is written, the parser at the last row, the memory tracker),
and each is sent along every path: statement in the URL with the rows in the body, statement
and rows in the body, a multipart form, gzip/zstd/lz4 bodies and inside a session. The answer
must be what a ClickHouse server sends (its status, ``X-ClickHouse-Exception-Code``, a
``Code: N. DB::Exception`` body) and nothing of the failed insert may be stored. Runs against
the embedded endpoint or, with TRACKHOUSE_CLICKHOUSE_URL, a real ClickHouse server.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import lz4.frame
import pytest
import zstandard
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

# A multipart form carries the rows inside its query field, which a ClickHouse server caps at
# http_max_field_value_size (128 KiB): that path gets smaller bodies.
FORM_FIELD_BYTES = 100_000


@dataclass(frozen=True)
class Failure:
    """A table, rows that break an INSERT into it, and the error a ClickHouse server answers."""

    ddl: str
    code: int
    name: str
    status: int
    rows: Callable[[int], list[dict[str, Any]]]
    settings: dict[str, str] = field(default_factory=dict)
    small_body_settings: dict[str, str] = field(default_factory=dict)

    def body(self, limit: int | None = None) -> bytes:
        rows = self.rows(limit or 1 << 30)
        return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def monthly_rows(_: int) -> list[dict[str, Any]]:
    """One row per month from 2000-01: 101 partitions of ``toYYYYMM(ts)``."""
    return [{"ts": f"{2000 + m // 12}-{m % 12 + 1:02d}-01 00:00:00", "n": m} for m in range(101)]


def rows_then(last: dict[str, Any], size: int = 60_000, width: int = 20) -> Callable[..., Any]:
    """``size`` good rows (fewer when the path caps the body) and then ``last``."""

    def build(limit: int) -> list[dict[str, Any]]:
        count = min(size, limit // (width + 20))
        return [{"n": i + 1, "s": f"{i:0{width}d}"} for i in range(count)] + [last]

    return build


FAILURES = {
    "too_many_partitions": Failure(
        "CREATE TABLE {table} (ts DateTime, n UInt32) "
        "ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY ts",
        252,
        "TOO_MANY_PARTS",
        500,
        monthly_rows,
    ),
    "type_error_in_last_row": Failure(
        "CREATE TABLE {table} (n UInt32, s String) ENGINE = MergeTree ORDER BY n",
        27,
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
        400,
        rows_then({"n": "not-a-number", "s": "last"}),
    ),
    "constraint": Failure(
        "CREATE TABLE {table} (n Int32, s String, CONSTRAINT positive CHECK n > 0) "
        "ENGINE = MergeTree ORDER BY n",
        469,
        "VIOLATED_CONSTRAINT",
        500,
        rows_then({"n": -1, "s": "last"}, size=1_000),
    ),
    "memory_limit": Failure(
        "CREATE TABLE {table} (n UInt32, s String) ENGINE = MergeTree ORDER BY n",
        241,
        "MEMORY_LIMIT_EXCEEDED",
        500,
        # Memory is accounted in steps of max_untracked_memory (4 MiB): 6 MB of rows cross
        # the limit mid-insert; a form's small body needs exact accounting to.
        rows_then({"n": 0, "s": "last"}, size=50_000, width=100),
        {"max_memory_usage": "1000000"},
        {"max_untracked_memory": "0"},
    ),
}


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


@dataclass
class Sender:
    """Sends ``INSERT INTO table FORMAT JSONEachRow`` with its rows along one path."""

    path: str
    url: str
    auth: tuple[str, str]
    session_id: str = field(default_factory=lambda: f"insert-errors-{uuid.uuid4().hex}")

    @property
    def body_limit(self) -> int | None:
        return FORM_FIELD_BYTES if self.path == "multipart" else None

    def insert(self, table: str, rows: bytes, settings: dict[str, str]) -> httpx.Response:
        statement = f"INSERT INTO {table} FORMAT JSONEachRow"
        params = dict(settings)
        headers: dict[str, str] = {}
        if self.path == "body":
            content = statement.encode() + b"\n" + rows
        elif self.path == "multipart":
            content, headers["Content-Type"] = multipart({"query": f"{statement}\n{rows.decode()}"})
        else:
            params["query"] = statement
            content = rows
            compress = {
                "gzip": gzip.compress,
                "zstd": zstandard.compress,
                "lz4": lz4.frame.compress,
            }
            if self.path in compress:
                content = compress[self.path](rows)
                headers["Content-Encoding"] = self.path
            if self.path == "session":
                params["session_id"] = self.session_id
        return httpx.post(
            self.url, params=params, content=content, headers=headers, auth=self.auth, timeout=120
        )

    def after(self) -> None:
        """A failed insert leaves its session usable (unlocked, answering)."""
        if self.path == "session":
            response = httpx.post(
                self.url,
                params={"session_id": self.session_id},
                content=b"SELECT 1",
                auth=self.auth,
                timeout=30,
            )
            assert (response.status_code, response.text) == (200, "1\n"), response.text


PATHS = ["url", "body", "multipart", "gzip", "zstd", "lz4", "session"]


@pytest.fixture(params=PATHS)
def sender(
    request: pytest.FixtureRequest, warehouse_url: str, credentials: tuple[str, str]
) -> Sender:
    return Sender(request.param, warehouse_url, credentials)


@pytest.fixture
def make_table(ch: Client, scratch_db: str) -> Iterator[Callable[[str], str]]:
    def create(ddl: str) -> str:
        table = f"{scratch_db}.t_{uuid.uuid4().hex[:8]}"
        ch.command(ddl.format(table=table))
        return table

    yield create


def assert_clickhouse_answer(response: httpx.Response, failure: Failure) -> None:
    assert response.status_code == failure.status, (response.status_code, response.text[:500])
    assert response.headers.get("X-ClickHouse-Exception-Code") == str(failure.code)
    assert response.text.startswith(f"Code: {failure.code}. DB::Exception: "), response.text[:500]
    assert f"({failure.name})" in response.text


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_failed_insert_answers_the_error_and_stores_nothing(
    sender: Sender, failure: Failure, make_table: Callable[[str], str], ch: Client
) -> None:
    table = make_table(failure.ddl)
    settings = failure.settings | (failure.small_body_settings if sender.body_limit else {})
    response = sender.insert(table, failure.body(sender.body_limit), settings)
    assert_clickhouse_answer(response, failure)
    assert ch.command(f"SELECT count() FROM {table}") == 0
    sender.after()


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_clickhouse_connect_raw_insert_raises(
    failure: Failure,
    make_table: Callable[[str], str],
    make_client: Callable[..., Client],
    ch: Client,
) -> None:
    table = make_table(failure.ddl)
    client = make_client(compress=False)
    with pytest.raises(DatabaseError) as raised:
        client.raw_insert(
            table, insert_block=failure.body(), fmt="JSONEachRow", settings=failure.settings
        )
    assert f"Code: {failure.code}." in str(raised.value)
    assert ch.command(f"SELECT count() FROM {table}") == 0


NATIVE_ROWS = {
    "too_many_partitions": (
        ["ts", "n"],
        [[dt.datetime(2000 + m // 12, m % 12 + 1, 1), m] for m in range(101)],
    ),
    "constraint": (["n", "s"], [[n, "row"] for n in range(1, 1_000)] + [[-1, "last"]]),
}


@pytest.mark.parametrize("compress", [False, "lz4"])
@pytest.mark.parametrize("failure", NATIVE_ROWS)
def test_clickhouse_connect_insert_raises(
    failure: str,
    compress: Any,
    make_table: Callable[[str], str],
    make_client: Callable[..., Client],
    ch: Client,
) -> None:
    """clickhouse-connect's own insert() (Native blocks, compressed or not) sees the error."""
    table = make_table(FAILURES[failure].ddl)
    columns, rows = NATIVE_ROWS[failure]
    client = make_client(compress=compress)
    with pytest.raises(DatabaseError) as raised:
        client.insert(table, rows, column_names=columns)
    assert f"Code: {FAILURES[failure].code}." in str(raised.value)
    assert ch.command(f"SELECT count() FROM {table}") == 0


def test_successful_insert_answers_200_with_summary(
    sender: Sender, make_table: Callable[[str], str], ch: Client
) -> None:
    table = make_table("CREATE TABLE {table} (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
    count = 2_000 if sender.body_limit else 50_000
    rows = b"".join(b'{"n": %d, "s": "row %d"}\n' % (i, i) for i in range(count))
    response = sender.insert(table, rows, {})
    assert response.status_code == 200, response.text
    assert "X-ClickHouse-Exception-Code" not in response.headers
    assert json.loads(response.headers["X-ClickHouse-Summary"])["written_rows"] == str(count)
    stored = ch.query(f"SELECT count(), sum(n) FROM {table}").result_rows
    assert stored == [(count, count * (count - 1) // 2)]
    sender.after()


@pytest.mark.embedded_only
def test_body_limit_hit_mid_insert_stores_nothing(private_warehouse: Callable[..., Any]) -> None:
    """The endpoint's own body limit (TRACKHOUSE_WAREHOUSE_MAX_BODY_BYTES) stops an insert
    whose earlier chunks the engine has already parsed."""
    instance = private_warehouse(warehouse_max_body_bytes=str(1 << 20))

    def post(sql: str, content: Any = b"", **params: str) -> httpx.Response:
        return httpx.post(
            instance.url, params={"query": sql, **params}, content=content, timeout=60,
            headers=instance.auth_headers,
        )

    assert post("CREATE TABLE t (n UInt32, s String) ENGINE = MergeTree ORDER BY n").is_success

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is found while streaming
        for block in range(40):
            yield b"".join(
                b'{"n": %d, "s": "%s"}\n' % (block * 1000 + i, b"x" * 40) for i in range(1000)
            )

    response = post("INSERT INTO t FORMAT JSONEachRow", chunks())
    assert_clickhouse_answer(response, Failure("", 229, "QUERY_IS_TOO_LARGE", 413, monthly_rows))
    assert post("SELECT count() FROM t").text == "0\n"
    small = post("INSERT INTO t FORMAT JSONEachRow", b'{"n": 1, "s": "fits"}\n')
    assert small.status_code == 200, small.text
    assert post("SELECT count() FROM t").text == "1\n"


@pytest.mark.embedded_only
def test_clickhouse_compressed_body_is_refused(
    warehouse_url: str, credentials: tuple[str, str], make_table: Callable[[str], str], ch: Client
) -> None:
    """decompress=1 (ClickHouse's own block compression) is not implemented by the endpoint:
    it says so instead of storing the compressed bytes as a row."""
    table = make_table("CREATE TABLE {table} (s String) ENGINE = MergeTree ORDER BY s")
    response = httpx.post(
        warehouse_url,
        params={"query": f"INSERT INTO {table} FORMAT RawBLOB", "decompress": "1"},
        content=b"\x82" + b"\x00" * 24,
        auth=credentials,
        timeout=30,
    )
    assert_clickhouse_answer(response, Failure("", 48, "NOT_IMPLEMENTED", 501, monthly_rows))
    assert ch.command(f"SELECT count() FROM {table}") == 0


def test_client_gone_mid_insert_stores_nothing(
    warehouse_url: str, credentials: tuple[str, str], make_table: Callable[[str], str], ch: Client
) -> None:
    """A client that goes away halfway through its body has inserted nothing, although the
    engine has already parsed what came."""
    table = make_table("CREATE TABLE {table} (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
    host, port = warehouse_url.removeprefix("http://").rsplit(":", 1)
    token = base64.b64encode(":".join(credentials).encode()).decode()
    query = urllib.parse.quote(f"INSERT INTO {table} FORMAT JSONEachRow")
    rows = b"".join(b'{"n": %d, "s": "row"}\n' % n for n in range(20_000))
    with socket.create_connection((host, int(port)), timeout=30) as client:
        client.sendall(
            f"POST /?query={query} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {token}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
            + b"%x\r\n%s\r\n" % (len(rows), rows)
        )
        time.sleep(1.0)  # the rows reach the engine; the body's last chunk never comes
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # a wrongly committed insert would show up meanwhile
        assert ch.command(f"SELECT count() FROM {table}") == 0
        time.sleep(0.25)
    processes = "SELECT count() FROM system.processes WHERE query LIKE '%FORMAT JSONEachRow%'"
    assert ch.command(processes + f" AND query LIKE '%{table}%' AND query NOT LIKE '%system%'") == 0

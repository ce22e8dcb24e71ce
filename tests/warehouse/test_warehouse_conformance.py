"""Unmodified clickhouse-connect against the warehouse: what Trackhouse's processes rely on.

Runs against the embedded endpoint or, with TRACKHOUSE_CLICKHOUSE_URL, a real ClickHouse.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import pandas as pd
import pyarrow as pa
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

TABLE_DDL = """
CREATE TABLE {db}.items (
    id UInt32, name String, price Float64, at DateTime64(3, 'UTC'),
    tags Array(String), attrs Map(String, String), note Nullable(String)
) ENGINE = MergeTree ORDER BY id
"""

ROWS = [
    [1, "apple", 1.5, dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC), ["a", "b"], {"k": "v"}, None],
    [2, "pear", 2.25, dt.datetime(2024, 1, 2, 13, 30, tzinfo=dt.UTC), [], {}, "ripe"],
    [3, "plum", 0.75, dt.datetime(2024, 1, 3, 8, 15, tzinfo=dt.UTC), ["c"], {"x": "y"}, None],
]
COLUMNS = ["id", "name", "price", "at", "tags", "attrs", "note"]


@pytest.fixture
def items(ch: Client, scratch_db: str) -> str:
    ch.command(TABLE_DDL.format(db=scratch_db))
    ch.insert(f"{scratch_db}.items", ROWS, column_names=COLUMNS)
    return f"{scratch_db}.items"


def test_query_returns_typed_rows(ch: Client, items: str) -> None:
    result = ch.query(f"SELECT id, name, price, at, tags, attrs, note FROM {items} ORDER BY id")
    assert result.column_names == tuple(COLUMNS)
    assert [r[0] for r in result.result_rows] == [1, 2, 3]
    first = result.result_rows[0]
    assert first[1:3] == ("apple", 1.5)
    assert first[3].replace(tzinfo=dt.UTC) == ROWS[0][3]
    assert first[4:] == (["a", "b"], {"k": "v"}, None)
    assert result.summary.get("result_rows") == "3" or result.summary.get("read_rows")


def test_query_df_and_arrow(ch: Client, items: str) -> None:
    frame = ch.query_df(f"SELECT id, name, price FROM {items} ORDER BY id")
    assert list(frame["name"]) == ["apple", "pear", "plum"]
    assert frame["price"].sum() == pytest.approx(4.5)
    table = ch.query_arrow(f"SELECT id, name FROM {items} ORDER BY id")
    assert isinstance(table, pa.Table)
    assert table.column("name").to_pylist() == ["apple", "pear", "plum"]


def test_command_distinguishes_rows_from_statements(ch: Client, scratch_db: str) -> None:
    assert ch.command("SELECT 41 + 1") == 42
    assert ch.command("SELECT 'a', 2") == ["a", "2"]
    summary = ch.command(f"CREATE TABLE {scratch_db}.t (x UInt8) ENGINE = Memory")
    assert not isinstance(summary, (int, str, list))  # a QuerySummary, not parsed rows
    written = ch.command(f"INSERT INTO {scratch_db}.t SELECT number FROM numbers(7)")
    assert written.written_rows == 7
    assert ch.command(f"SELECT count() FROM {scratch_db}.t") == 7
    assert ch.command(f"EXISTS TABLE {scratch_db}.t") == 1


def test_insert_dataframe_and_rows_summary(ch: Client, scratch_db: str) -> None:
    ch.command(
        f"CREATE TABLE {scratch_db}.df (id UInt32, name String, v Float64) "
        "ENGINE = MergeTree ORDER BY id"
    )
    frame = pd.DataFrame({"id": [10, 11, 12], "name": ["x", "y", "z"], "v": [0.1, 0.2, 0.3]})
    summary = ch.insert_df(f"{scratch_db}.df", frame)
    assert summary.written_rows == 3
    rows = ch.query(f"SELECT id, name FROM {scratch_db}.df ORDER BY id").result_rows
    assert rows == [(10, "x"), (11, "y"), (12, "z")]


@pytest.mark.parametrize(
    ("fmt", "payload"),
    [
        ("CSV", "4,kiwi,3.5\n5,lime,0.5\n"),
        ("TSV", "4\tkiwi\t3.5\n5\tlime\t0.5\n"),
        ("JSONEachRow", '{"id":4,"name":"kiwi","price":3.5}\n{"id":5,"name":"lime","price":0.5}\n'),
    ],
)
def test_raw_insert_text_formats(ch: Client, items: str, fmt: str, payload: str) -> None:
    ch.raw_insert(items, ["id", "name", "price"], payload, fmt=fmt)
    rows = ch.query(f"SELECT id, name, price FROM {items} WHERE id > 3 ORDER BY id").result_rows
    assert rows == [(4, "kiwi", 3.5), (5, "lime", 0.5)]


def test_raw_insert_binary_formats(ch: Client, items: str) -> None:
    native = ch.raw_query(f"SELECT id + 100 AS id, name, price FROM {items} FORMAT Native")
    ch.raw_insert(items, ["id", "name", "price"], native, fmt="Native")
    row_binary = ch.raw_query(
        f"SELECT toUInt32(id + 200) AS id, name, price FROM {items} FORMAT RowBinary"
    )
    ch.raw_insert(items, ["id", "name", "price"], row_binary, fmt="RowBinary")
    assert ch.command(f"SELECT count() FROM {items}") == 12  # 3 + 3 (Native) + 6 (RowBinary)
    assert ch.command(f"SELECT name FROM {items} WHERE id = 202") == "pear"


def test_client_and_server_side_parameters(ch: Client, items: str) -> None:
    server_side = ch.query(
        f"SELECT name FROM {items} WHERE price > {{p:Float64}} ORDER BY id", parameters={"p": 1.0}
    )
    assert server_side.result_rows == [("apple",), ("pear",)]
    client_side = ch.query(f"SELECT name FROM {items} WHERE name = %(n)s", parameters={"n": "plum"})
    assert client_side.result_rows == [("plum",)]
    hostile = "x' OR 1=1 --"
    assert ch.query(
        f"SELECT count() FROM {items} WHERE name = {{n:String}}", parameters={"n": hostile}
    ).result_rows == [(0,)]


def test_long_parameters_use_multipart_form(make_client: Callable[..., Client], items: str) -> None:
    client = make_client(form_encode_query_params=True)
    names = ["apple", "plum"] + [f"filler-{i}" for i in range(3000)]
    result = client.query(
        f"SELECT name FROM {items} WHERE has({{names:Array(String)}}, name) ORDER BY id",
        parameters={"names": names},
    )
    assert result.result_rows == [("apple",), ("plum",)]


@pytest.mark.parametrize("compression", [False, "lz4", "zstd", "gzip"])
def test_compression(
    make_client: Callable[..., Client], scratch_db: str, compression: str | bool
) -> None:
    client = make_client(compress=compression)
    client.command(
        f"CREATE TABLE {scratch_db}.c (id UInt64, s String) ENGINE = MergeTree ORDER BY id"
    )
    rows = [[i, f"value-{i % 17}"] for i in range(20_000)]
    client.insert(f"{scratch_db}.c", rows, column_names=["id", "s"])
    result = client.query(f"SELECT id, s FROM {scratch_db}.c ORDER BY id")
    assert len(result.result_rows) == 20_000
    assert result.result_rows[12345] == (12345, "value-3")
    assert client.query_df(f"SELECT sum(id) AS total FROM {scratch_db}.c")["total"][0] == sum(
        range(20_000)
    )


def test_session_keeps_use_set_and_temporary_tables(
    make_client: Callable[..., Client], scratch_db: str
) -> None:
    # database="" sends no `database` parameter, which would override the session's USE.
    session = make_client(session_id=f"conformance-{uuid.uuid4().hex}", database="")
    session.command(f"USE {scratch_db}")
    session.command("SET max_threads = 3")
    session.command("CREATE TEMPORARY TABLE scratch_tmp (x UInt32)")
    session.command("INSERT INTO scratch_tmp VALUES (1), (2), (3)")
    assert session.command("SELECT sum(x) FROM scratch_tmp") == 6
    assert session.command("SELECT currentDatabase()") == scratch_db
    assert session.command("SELECT getSetting('max_threads')") == 3
    other = make_client(session_id=f"conformance-{uuid.uuid4().hex}")
    with pytest.raises(DatabaseError) as failure:
        other.command("SELECT sum(x) FROM scratch_tmp")
    assert "UNKNOWN_TABLE" in str(failure.value) or "60" in str(failure.value)
    plain = make_client()
    assert plain.command("SELECT currentDatabase()") == "default"


def test_settings_apply_per_request(make_client: Callable[..., Client]) -> None:
    client = make_client()
    client.set_client_setting("max_threads", 2)
    assert client.command("SELECT getSetting('max_threads')") == 2
    assert client.query(
        "SELECT getSetting('max_block_size')", settings={"max_block_size": 1234}
    ).result_rows == [(1234,)]
    # Outside a session, neither the request setting nor a SET statement outlives its query.
    client.command("SET max_block_size = 4321")
    for _ in range(3):
        assert client.command("SELECT getSetting('max_block_size')") not in (1234, 4321)
    with pytest.raises(DatabaseError) as unknown:
        client.query("SELECT 1", settings={"no_such_setting_at_all": 1})
    assert "no_such_setting_at_all" in str(unknown.value)


def test_streaming_large_result(ch: Client) -> None:
    total = rows = blocks = 0
    with ch.query_row_block_stream("SELECT number FROM numbers(2000000)") as stream:
        for block in stream:
            blocks += 1
            rows += len(block)
            total += sum(r[0] for r in block)
    assert rows == 2_000_000
    assert total == sum(range(2_000_000))
    assert blocks > 1
    with ch.query_df_stream("SELECT number FROM numbers(300000)") as frames:
        assert sum(len(f) for f in frames) == 300_000
    # A whole-result query larger than the endpoint keeps in memory (it spools to disk).
    big = ch.query_arrow("SELECT number, repeat('x', 20) AS s FROM numbers(1500000)")
    assert big.num_rows == 1_500_000
    assert big.column("number").to_pylist()[-1] == 1_499_999


def test_errors_are_clickhouse_errors(ch: Client) -> None:
    with pytest.raises(DatabaseError) as syntax:
        ch.query("SELEC 1")
    assert "Code: 62" in str(syntax.value) and "SYNTAX_ERROR" in str(syntax.value)
    with pytest.raises(DatabaseError) as missing:
        ch.command("SELECT * FROM default.no_such_table_anywhere")
    assert "Code: 60" in str(missing.value)
    with pytest.raises(DatabaseError) as mid_stream:
        ch.query(
            "SELECT throwIf(number = 300000, 'boom') FROM numbers(1000000)",
            settings={"max_block_size": 10000},
        )
    assert "boom" in str(mid_stream.value)
    assert ch.command("SELECT 1") == 1  # the client and the endpoint carry on


def test_query_id_and_summary_headers(ch: Client) -> None:
    query_id = f"conformance-{uuid.uuid4()}"
    result = ch.query("SELECT number FROM numbers(10)", settings={"query_id": query_id})
    assert result.query_id == query_id
    assert int(result.summary["read_rows"]) >= 10


def test_retried_insert_with_deduplication_token_counts_once(ch: Client, scratch_db: str) -> None:
    """The collector's retry safety: the same batch and token a second time is dropped."""
    ch.command(
        f"CREATE TABLE {scratch_db}.d (id UInt64) ENGINE = MergeTree ORDER BY id "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    batch = [[i] for i in range(50)]
    for token in ("batch-1", "batch-1", "batch-2"):
        ch.insert(
            f"{scratch_db}.d",
            batch,
            column_names=["id"],
            settings={"insert_deduplication_token": token},
        )
    assert ch.command(f"SELECT count() FROM {scratch_db}.d") == 100
    # Settings of one request never leak into the next one on a pooled connection.
    assert ch.command("SELECT getSetting('insert_deduplication_token')") == ""


@pytest.mark.parametrize("wait_end_of_query", ["0", "1"])
def test_whole_document_formats_over_many_blocks(
    warehouse_url: str, credentials: tuple[str, str], wait_end_of_query: str
) -> None:
    """Formats with a header or footer come out as one document, however many blocks."""
    sql = "SELECT number AS n FROM numbers(100000) SETTINGS max_block_size = 1000 FORMAT {}"
    params = {"wait_end_of_query": wait_end_of_query}

    def fetch(fmt: str) -> httpx.Response:
        response = httpx.post(
            warehouse_url,
            params=params,
            content=sql.format(fmt).encode(),
            auth=credentials,
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.headers["X-ClickHouse-Format"] == fmt
        return response

    document = fetch("JSON").json()
    assert document["rows"] == 100_000 and int(document["data"][-1]["n"]) == 99_999
    lines = fetch("CSVWithNames").text.splitlines()
    assert lines[0] == '"n"' and len(lines) == 100_001
    assert fetch("TSV").text.splitlines()[-1] == "99999"


def test_external_data_tables(make_client: Callable[..., Client], items: str) -> None:
    from clickhouse_connect.driver.external import ExternalData

    wanted = ExternalData(
        file_name="wanted.csv", data=b"apple\nplum\n", fmt="CSV", structure=["name String"]
    )
    result = make_client().query(
        f"SELECT id FROM {items} WHERE name IN (SELECT name FROM wanted) ORDER BY id",
        external_data=wanted,
    )
    assert result.result_rows == [(1,), (3,)]
    typed = ExternalData(file_name="pairs", data=b"1\ta\n2\tb\n", types="UInt8,String")
    assert make_client().query(
        "SELECT sum(_1), max(_2) FROM pairs", external_data=typed
    ).result_rows == [(3, "b")]


@pytest.mark.parametrize("encoding", [None, "zstd"])
def test_large_chunked_insert_body_is_streamed(
    warehouse_url: str,
    credentials: tuple[str, str],
    ch: Client,
    scratch_db: str,
    encoding: str | None,
) -> None:
    """A body of unknown length (chunked), optionally compressed, goes in as it arrives."""
    import zstandard

    ch.command(
        f"CREATE TABLE {scratch_db}.big (id UInt64, s String) ENGINE = MergeTree ORDER BY id"
    )
    blocks, rows_per_block = 40, 25_000

    def body() -> Iterator[bytes]:
        compressor = zstandard.ZstdCompressor().compressobj() if encoding else None
        for block in range(blocks):
            start = block * rows_per_block
            data = "".join(f"{i},row-{i}\n" for i in range(start, start + rows_per_block)).encode()
            yield compressor.compress(data) if compressor else data
        if compressor:
            yield compressor.flush()

    headers = {"Content-Encoding": encoding} if encoding else {}
    response = httpx.post(
        warehouse_url,
        params={"query": f"INSERT INTO {scratch_db}.big FORMAT CSV"},
        content=body(),
        headers=headers,
        auth=credentials,
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert int(json.loads(response.headers["X-ClickHouse-Summary"])["written_rows"]) == 1_000_000
    assert ch.query(f"SELECT count(), sum(id), max(s) FROM {scratch_db}.big").result_rows == [
        (1_000_000, sum(range(1_000_000)), "row-999999")
    ]


def test_error_statuses_are_a_servers(warehouse_url: str, credentials: tuple[str, str]) -> None:
    """ClickHouse's HTTPHandler: a wrong password is 403 (a server answers 401 only when it asks
    a browser for basic auth), a query stopped by max_execution_time is 408."""
    user, password = credentials
    wrong = httpx.post(warehouse_url, content=b"SELECT 1", auth=(user, password + "x"), timeout=10)
    assert wrong.status_code == 403, wrong.text
    assert wrong.headers["X-ClickHouse-Exception-Code"] == "516"
    timed_out = httpx.post(
        warehouse_url,
        params={"max_execution_time": "1", "timeout_overflow_mode": "throw", "max_threads": "1"},
        content=b"SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 0",
        auth=credentials, timeout=60,
    )
    assert timed_out.status_code == 408, timed_out.text[:300]
    assert timed_out.headers["X-ClickHouse-Exception-Code"] == "159"

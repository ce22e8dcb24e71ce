"""The ClickHouse HTTP rules of the endpoint, on their own (no server needed)."""

from __future__ import annotations

import gzip

import lz4.frame
import pytest
import zstandard

from warehouse.http_protocol import (
    ClickHouseError,
    StreamDecoder,
    StreamEncoder,
    exception_block,
)
from warehouse.native_revision import BLOCK_INFO, NativeRevision, split_type
from warehouse.sql_text import (
    NeedMoreData,
    first_keyword,
    insert_from_file,
    parse_insert_head,
    set_statement_names,
    split_top_level,
    trailing_format,
    without_format,
)


@pytest.mark.parametrize(
    ("body", "statement", "fmt", "data"),
    [
        (b"INSERT INTO t FORMAT Native\n\x00\x01", "INSERT INTO t", "Native", b"\x00\x01"),
        (
            b"insert into db.t (a, b) format CSV  \r\n1,2\n",
            "insert into db.t (a, b)",
            "CSV",
            b"1,2\n",
        ),
        # Only one line break is skipped: binary data may begin with whitespace bytes.
        (b"INSERT INTO t FORMAT RowBinary\n\n\t", "INSERT INTO t", "RowBinary", b"\n\t"),
        (b"INSERT INTO t FORMAT TSV 1\t2", "INSERT INTO t", "TSV", b"1\t2"),
        (
            b"/* c */ INSERT INTO `we ird` ('format x') SETTINGS async_insert=0 FORMAT JSONEachRow",
            "/* c */ INSERT INTO `we ird` ('format x') SETTINGS async_insert=0",
            "JSONEachRow",
            b"",
        ),
    ],
)
def test_insert_head_splits_statement_and_data(
    body: bytes, statement: str, fmt: str, data: bytes
) -> None:
    head = parse_insert_head(body, complete=True)
    assert head is not None
    assert (head.statement, head.format, body[head.data_offset :]) == (statement, fmt, data)


@pytest.mark.parametrize(
    "body",
    [
        b"SELECT 1 FORMAT Native",
        b"INSERT INTO t SELECT * FROM s",
        b"INSERT INTO t VALUES (1)",
        b"CREATE TABLE t (x UInt8) ENGINE = Memory",
        b"WITH 1 AS x SELECT x FORMAT CSV",
    ],
)
def test_statements_without_inline_data(body: bytes) -> None:
    assert parse_insert_head(body, complete=True) is None


def test_incomplete_head_asks_for_more() -> None:
    for prefix in (
        b"INSERT INTO t FORM",
        b"INSERT INTO t FORMAT Nat",
        b"INSERT INTO 't",
        b"INSERT INTO t FORMAT Native",
    ):
        with pytest.raises(NeedMoreData):
            parse_insert_head(prefix, complete=False)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("INSERT INTO t (a)", "INSERT INTO t (a) FROM INFILE '/dev/fd/7' {c} SETTINGS x = '0'"),
        (
            "/* q */ INSERT INTO t SETTINGS async_insert=0",
            "/* q */ INSERT INTO t FROM INFILE '/dev/fd/7' {c} SETTINGS async_insert=0, x = '0'",
        ),
        # The statement's own value wins over the default.
        ("INSERT INTO t SETTINGS x=1", "INSERT INTO t FROM INFILE '/dev/fd/7' {c} SETTINGS x=1"),
        (
            "INSERT INTO FUNCTION f('SETTINGS', (SETTINGS))",
            "INSERT INTO FUNCTION f('SETTINGS', (SETTINGS)) FROM INFILE '/dev/fd/7' {c} "
            "SETTINGS x = '0'",
        ),
    ],
)
def test_insert_from_file_puts_infile_before_settings(statement: str, expected: str) -> None:
    sql = insert_from_file(statement, "/dev/fd/7", "JSONEachRow", {"x": "0"})
    assert sql == expected.format(c="COMPRESSION 'none'") + " FORMAT JSONEachRow"


def test_trailing_format_and_first_keyword() -> None:
    assert trailing_format("SELECT 1\n FORMAT Native") == "Native"
    assert trailing_format("SELECT 'FORMAT x' AS f") is None
    assert first_keyword("-- hi\n/* there */ with 1 as x select x") == "WITH"
    assert first_keyword("(SELECT 1)") == ""


def test_engine_errors_keep_code_and_name() -> None:
    error = ClickHouseError.from_engine(
        RuntimeError("Code: 60. DB::Exception: Table default.t does not exist. (UNKNOWN_TABLE)")
    )
    assert (error.code, error.name, error.http_status) == (60, "UNKNOWN_TABLE", 404)
    assert error.body().startswith(
        b"Code: 60. DB::Exception: Table default.t does not exist. (UNKNOWN_TABLE) (version "
    )
    block = exception_block(error, "tag123")
    assert block.startswith(b"__exception__\r\ntag123\r\nCode: 60.")
    assert block.endswith(b" tag123\r\n__exception__\r\n")


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_decoders_accept_chunked_multi_frame_bodies(encoding: str) -> None:
    parts = [b"alpha " * 1000, b"beta " * 1000]
    compress = {
        "gzip": gzip.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "lz4": lz4.frame.compress,
    }[encoding]
    payload = (
        b"".join(compress(p) for p in parts) if encoding != "gzip" else compress(b"".join(parts))
    )
    decoder = StreamDecoder(encoding)
    out = b"".join(decoder.decode(payload[i : i + 333]) for i in range(0, len(payload), 333))
    assert out + decoder.finish() == b"".join(parts)


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4", "deflate"])
def test_encoders_round_trip(encoding: str) -> None:
    encoder = StreamEncoder(encoding)
    encoded = encoder.encode(b"x" * 5000) + encoder.encode(b"y" * 10) + encoder.finish()
    decoder = StreamDecoder(encoding)
    assert decoder.decode(encoded) + decoder.finish() == b"x" * 5000 + b"y" * 10


def test_unknown_encoding_is_a_clickhouse_error() -> None:
    with pytest.raises(ClickHouseError) as failure:
        StreamDecoder("snappy-ish")
    assert failure.value.name == "UNKNOWN_COMPRESSION_METHOD"


def test_set_statement_names() -> None:
    assert set_statement_names("SET max_threads = 3") == ["max_threads"]
    assert set_statement_names(
        "/* c */ set a = 'x,y', `b` = [1, 2], c = DEFAULT, join_algorithm = hash"
    ) == ["a", "b", "c", "join_algorithm"]
    assert set_statement_names("SELECT 1") == []
    assert set_statement_names("SETTINGS x = 1") == []


def test_without_format() -> None:
    assert without_format("SELECT 1\n FORMAT Native") == "SELECT 1"
    assert without_format("SELECT 1 FORMAT Native SETTINGS a = 1;") == "SELECT 1 SETTINGS a = 1"
    assert without_format("SELECT 'FORMAT x' AS f;") == "SELECT 'FORMAT x' AS f"


def test_split_type() -> None:
    assert split_type("Map(String, Array(Tuple(a UInt8, b String)))") == (
        "Map",
        ["String", "Array(Tuple(a UInt8, b String))"],
    )
    assert split_type("Enum8('a,b' = 1, 'c' = 2)") == ("Enum8", ["'a,b' = 1", "'c' = 2"])
    assert split_type("UInt8") == ("UInt8", [])


def test_split_top_level_keeps_parentheses_and_quotes_whole() -> None:
    """One splitter serves external-table types, type arguments and cluster ALTER clauses."""
    assert split_top_level("Tuple(a, b),String") == ["Tuple(a, b)", "String"]
    assert split_top_level("\n    modify column a String default 'x, (y', drop column b,") == [
        "modify column a String default 'x, (y'",
        "drop column b",
    ]
    assert split_top_level("'it\\'s, one', two") == ["'it\\'s, one'", "two"]
    assert split_top_level(" , ") == []


def _column(name: bytes, type_name: bytes, data: bytes) -> bytes:
    return bytes([len(name)]) + name + bytes([len(type_name)]) + type_name + data


def test_native_revision_adds_block_info_time_zones_and_flags() -> None:
    strings = _column(b"s", b"String", b"\x01a\x02bc")
    nested = _column(b"n", b"Array(Nullable(String))", (1).to_bytes(8, "little") * 2 + b"\x00\x01x")
    stamps = _column(b"d", b"DateTime", b"\x01\x00\x00\x00\x02\x00\x00\x00")
    block = b"\x03\x02" + strings + nested + stamps
    real = ["String", "Array(Nullable(String))", "DateTime('Asia/Tokyo')"]
    converted = NativeRevision(54405, real).convert(block + block, walk_all=True)
    tokyo = _column(b"d", b"DateTime('Asia/Tokyo')", b"\x01\x00\x00\x00\x02\x00\x00\x00")
    expected_block = BLOCK_INFO + b"\x03\x02" + strings + nested + tokyo
    assert converted == expected_block * 2
    # One streamed block: the columns after the last change are copied without a walk.
    assert NativeRevision(54405, ["String"]).convert(block) == BLOCK_INFO + block
    # Below the time zone revision: block info only.
    assert NativeRevision(54000, real).convert(block) == BLOCK_INFO + block
    # From the custom serialization revision every column header ends with a flag byte.
    flagged = NativeRevision(54460, real).convert(b"\x01\x02" + strings)
    assert flagged == BLOCK_INFO + b"\x01\x02\x01s\x06String\x00\x01a\x02bc"


def test_native_revision_refuses_a_layout_it_cannot_walk() -> None:
    block = b"\x01\x01" + _column(b"v", b"Dynamic", b"\x00" * 10)
    with pytest.raises(ClickHouseError) as failure:
        NativeRevision(54460).convert(block)
    assert failure.value.name == "NOT_IMPLEMENTED"

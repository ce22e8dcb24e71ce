"""ClickHouse HTTP-interface rules the embedded endpoint follows, free of any I/O.

Everything here mirrors what a ClickHouse server does with an HTTP request: which URL
parameters are settings and which are transport controls, where an ``INSERT ... FORMAT x``
statement ends and its inline data begins, how errors are shaped and which HTTP status
they get, and the streaming (de)compressors for ``Content-Encoding``/``Accept-Encoding``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import lz4.frame
import zstandard

ENGINE_VERSION = "26.9"  # replaced at start-up by the real chdb engine version

# URL parameters that steer the HTTP exchange rather than name a query setting. ClickHouse
# accepts them on every request; clickhouse-connect sends several of them on its own.
TRANSPORT_PARAMETERS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "user",
        "password",
        "quota_key",
        "buffer_size",
        "wait_end_of_query",
        "compress",
        "decompress",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "client_protocol_version",
        "role",
        "http_native_compression_disable_checksumming_on_decompress",
        "http_response_buffer_size",
        "add_http_cors_header",
        "cancel_http_readonly_queries_on_client_close",
        "http_wait_end_of_query",
        "output_format_parallel_formatting_http",
    }
)
PARAM_PREFIX = "param_"

# --- errors ---------------------------------------------------------------------------

ERROR_CODES = {
    "UNKNOWN_FORMAT": 73,
    "CANNOT_READ_ALL_DATA": 33,
    "SYNTAX_ERROR": 62,
    "NOT_IMPLEMENTED": 48,
    "BAD_ARGUMENTS": 36,
    "UNKNOWN_COMPRESSION_METHOD": 89,
    "CANNOT_DECOMPRESS": 271,
    "QUERY_IS_TOO_LARGE": 229,
    "SESSION_NOT_FOUND": 372,
    "SESSION_IS_LOCKED": 373,
    "INVALID_SESSION_TIMEOUT": 374,
    "REQUIRED_PASSWORD": 194,
    "AUTHENTICATION_FAILED": 516,
    "QUERY_WAS_CANCELLED": 394,
    "EMPTY_QUERY": 211,
    "UNKNOWN_TYPE_OF_QUERY": 78,
    "TIMEOUT_EXCEEDED": 159,
    "READONLY": 164,
}

# Status codes as ClickHouse's HTTPHandler assigns them (by error name). Everything else is
# 500. Nothing maps to 429/503/504: clients retry those, and none of these errors heals by
# retrying.
_STATUS_BY_NAME: dict[str, int] = {
    **dict.fromkeys(
        (
            "SYNTAX_ERROR",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "CANNOT_PARSE_BOOL",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
            "CANNOT_READ_ALL_DATA",
            "BAD_ARGUMENTS",
            "EMPTY_QUERY",
            "CANNOT_DECOMPRESS",
            "UNKNOWN_COMPRESSION_METHOD",
            "INVALID_SESSION_TIMEOUT",
            "ILLEGAL_TYPE_OF_ARGUMENT",
            "NUMBER_OF_ARGUMENTS_DOESNT_MATCH",
            "UNKNOWN_QUERY_PARAMETER",
            "BAD_QUERY_PARAMETER",
            "INCORRECT_QUERY",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_FORMAT",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "SESSION_NOT_FOUND",
        ),
        404,
    ),
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(("AUTHENTICATION_FAILED", "WRONG_PASSWORD", "UNKNOWN_USER"), 403),
    "TIMEOUT_EXCEEDED": 408,
    "ACCESS_DENIED": 403,
    "READONLY": 403,
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
}

_CHDB_ERROR = re.compile(r"Code: (\d+)\. DB::Exception: ", re.S)
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_VERSION_SUFFIX = re.compile(r"\s*\(version [^)]*\)\s*$")


class ClickHouseError(Exception):
    """An error answered the way a ClickHouse server answers it."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def named(cls, name: str, message: str) -> ClickHouseError:
        return cls(ERROR_CODES[name], name, message)

    @classmethod
    def from_engine(cls, error: BaseException) -> ClickHouseError:
        """Wrap a chdb exception (its text is already ``Code: N. DB::Exception: ...``)."""
        if isinstance(error, ClickHouseError):
            return error
        text = str(error).strip()
        match = _CHDB_ERROR.search(text)
        if not match:
            return cls(1001, "STD_EXCEPTION", text or type(error).__name__)
        # Keep the innermost message: chdb sometimes nests "Code: N. DB::Exception: Code: N. ..."
        last = list(_CHDB_ERROR.finditer(text))[-1]
        message = _VERSION_SUFFIX.sub("", text[last.end() :])
        name_match = _ERROR_NAME.search(message)
        name = name_match.group(1) if name_match else "UNKNOWN_EXCEPTION"
        if name_match:
            message = message[: name_match.start()].rstrip()
        return cls(int(match.group(1)), name, message)

    @property
    def http_status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)

    def body(self) -> bytes:
        sentence = self.message if self.message.endswith(".") else self.message + "."
        return (
            f"Code: {self.code}. DB::Exception: {sentence} ({self.name}) "
            f"(version {ENGINE_VERSION})\n"
        ).encode("utf-8", "surrogateescape")


def exception_block(error: ClickHouseError, tag: str) -> bytes:
    """The marker block ClickHouse >= 25.11 appends when a query fails mid-stream."""
    message = error.body().rstrip(b"\n")
    return (
        b"__exception__\r\n"
        + tag.encode()
        + b"\r\n"
        + message
        + b"\n"
        + f"{len(message)} {tag}".encode()
        + b"\r\n__exception__\r\n"
    )


# --- splitting a request into statement and inline data --------------------------------

# Tokens of ClickHouse SQL that matter for finding the top-level FORMAT clause: comments,
# quoted strings and identifiers are skipped whole so that a "FORMAT" inside them is ignored.
_TOKEN = re.compile(
    rb"""
      (?P<space>\s+)
    | (?P<comment>--[^\n]*(?:\n|$)|\#[^\n]*(?:\n|$)|/\*.*?\*/)
    | (?P<quoted>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`)
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<other>.)
    """,
    re.S | re.X,
)


@dataclass(frozen=True)
class InsertHead:
    """``INSERT ... FORMAT name`` followed by inline data starting at ``data_offset``."""

    statement: str  # the INSERT without its FORMAT clause (what insert_from_file takes)
    format: str
    data_offset: int


class NeedMoreData(Exception):
    """The head of the body ends before the statement does."""


def parse_insert_head(head: bytes, complete: bool) -> InsertHead | None:
    """Find where an ``INSERT ... FORMAT x`` statement ends and its data begins.

    Returns None when ``head`` is not such an INSERT (a SELECT, an INSERT ... SELECT or
    ... VALUES, DDL), so the whole body is SQL. Raises NeedMoreData when ``head`` stops inside
    the statement and more of the body is coming (``complete`` False). Data starts after the
    format name, skipping spaces and tabs and then at most one line break, the rule of
    ClickHouse's own INSERT parser, so binary formats keep every byte.
    """
    position, depth, first_word, expect_format_name = 0, 0, True, False
    format_start = -1
    while position < len(head):
        match = _TOKEN.match(head, position)
        if match is None:  # an unterminated quote or comment
            if complete:
                return None
            raise NeedMoreData
        kind, token = match.lastgroup, match.group()
        end = match.end()
        if kind == "word":
            if end == len(head) and not complete:
                raise NeedMoreData  # the word may continue in the next chunk
            upper = token.upper()
            if first_word:
                if upper != b"INSERT":
                    return None
                first_word = False
            elif expect_format_name:
                data = end
                while data < len(head) and head[data] in b" \t\f":
                    data += 1
                if data == len(head) and not complete:
                    raise NeedMoreData
                if head[data : data + 1] == b"\r":
                    data += 1
                if head[data : data + 1] == b"\n":
                    data += 1
                statement = head[:format_start].decode("utf-8", "surrogateescape").rstrip()
                return InsertHead(statement, token.decode(), data)
            elif depth == 0 and upper in (b"SELECT", b"WITH", b"VALUES"):
                return None
            elif depth == 0 and upper == b"FORMAT":
                expect_format_name, format_start = True, match.start()
        elif kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        elif kind not in ("space", "comment") and first_word:
            return None
        position = end
    if complete:
        return None
    raise NeedMoreData


def insert_from_file(
    statement: str, path: str, data_format: str, defaults: dict[str, str] | None = None
) -> str:
    """``statement`` (an INSERT without its FORMAT clause) reading its data from ``path``.

    ``FROM INFILE`` goes where ClickHouse's grammar wants it: after the table and its column
    list, before a top-level ``SETTINGS`` clause. ``defaults`` are settings for this statement
    that its own ``SETTINGS`` clause may override.
    """
    data = statement.encode("utf-8", "surrogateescape")
    position, depth, settings_at = 0, 0, len(data)
    while position < len(data):
        match = _TOKEN.match(data, position)
        if match is None:
            break
        kind = match.lastgroup
        depth += (kind == "open") - (kind == "close")
        if kind == "word" and depth == 0 and match.group().upper() == b"SETTINGS":
            settings_at = match.start()
            break
        position = match.end()
    head = data[:settings_at].decode("utf-8", "surrogateescape").rstrip()
    own = data[settings_at:].decode("utf-8", "surrogateescape").strip()
    named = {m.group().lower() for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", own)}
    extra = ", ".join(
        f"{name} = '{value}'" for name, value in (defaults or {}).items() if name not in named
    )
    settings = (f"{own}, {extra}" if own else f"SETTINGS {extra}") if extra else own
    infile = "FROM INFILE '" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{head} {infile} COMPRESSION 'none' {settings}".rstrip() + f" FORMAT {data_format}"


_FORMAT_CLAUSE = re.compile(
    rb"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)(?:\s+SETTINGS\s+[^;()]*)?\s*;?\s*$", re.I
)


def trailing_format(sql: str) -> str | None:
    """The output format a statement names in its trailing ``FORMAT x`` clause, if any."""
    match = _FORMAT_CLAUSE.search(sql.encode("utf-8", "surrogateescape")[-200:])
    return match.group(1).decode() if match else None


def without_format(sql: str) -> str:
    """The statement without its trailing ``FORMAT x`` clause (and a final semicolon)."""
    data = sql.encode("utf-8", "surrogateescape")
    tail_at = max(0, len(data) - 200)
    match = _FORMAT_CLAUSE.search(data, tail_at)
    if match is None:
        return sql.rstrip().rstrip(";")
    settings = re.search(rb"\bSETTINGS\s+[^;()]*?(?=\s*;?\s*$)", match.group(0), re.I)
    head = data[: match.start()].rstrip() + (b" " + settings.group(0) if settings else b"")
    return head.decode("utf-8", "surrogateescape").rstrip().rstrip(";")


def set_statement_names(sql: str) -> list[str]:
    """The settings a ``SET a = 1, b = 'x'`` statement names (none if it is not one)."""
    data = sql.encode("utf-8", "surrogateescape")
    names: list[str] = []
    position, depth, seen_set, expect_name = 0, 0, False, False
    previous_word = b""
    while position < len(data):
        match = _TOKEN.match(data, position)
        if match is None:
            break
        kind, token = match.lastgroup, match.group()
        position = match.end()
        if kind in ("space", "comment"):
            continue
        if not seen_set:
            if kind != "word" or token.upper() != b"SET":
                return []
            seen_set = expect_name = True
            continue
        depth += (kind == "open") - (kind == "close")
        if depth:
            continue
        if kind == "word" and expect_name:
            previous_word, expect_name = token, False
        elif kind == "quoted" and expect_name and token[:1] == b"`":
            previous_word, expect_name = token[1:-1], False
        elif token == b"=" and previous_word:
            names.append(previous_word.decode("utf-8", "surrogateescape"))
            previous_word = b""
        elif token == b",":
            expect_name = True
    return names


def first_keyword(sql: str) -> str:
    """The first SQL keyword, upper-cased, after comments and whitespace ('' if none)."""
    position, data = 0, sql.encode("utf-8", "surrogateescape")[:4096]
    while position < len(data):
        match = _TOKEN.match(data, position)
        if match is None:
            return ""
        if match.lastgroup == "word":
            return match.group().decode().upper()
        if match.lastgroup not in ("space", "comment"):
            return ""
        position = match.end()
    return ""


# --- compression ------------------------------------------------------------------------

Codec = Callable[[bytes], bytes]


class StreamDecoder:
    """Incremental decoder of a request ``Content-Encoding`` (gzip, deflate, lz4, zstd)."""

    def __init__(self, encoding: str | None) -> None:
        encoding = (encoding or "").strip().lower()
        self._finish: Callable[[], bytes] = lambda: b""
        if encoding in ("", "identity", "none"):
            self._decode: Codec = _identity
        elif encoding in ("gzip", "x-gzip", "deflate"):
            inflater = zlib.decompressobj(47)  # 32 + 15: accept a gzip or zlib header
            self._decode = inflater.decompress
            self._finish = inflater.flush
        elif encoding == "zstd":
            self._decode = (
                zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress
            )
        elif encoding == "lz4":
            self._decode = _Lz4FrameDecoder().decode
        else:
            raise ClickHouseError.named(
                "UNKNOWN_COMPRESSION_METHOD", f"Unknown HTTP Content-Encoding: {encoding}"
            )

    def decode(self, chunk: bytes) -> bytes:
        try:
            return self._decode(chunk)
        except Exception as error:  # every codec raises its own type
            raise ClickHouseError.named(
                "CANNOT_DECOMPRESS", f"Cannot decompress the request body: {error}"
            ) from error

    def finish(self) -> bytes:
        try:
            return self._finish()
        except Exception as error:
            raise ClickHouseError.named(
                "CANNOT_DECOMPRESS", f"Cannot decompress the request body: {error}"
            ) from error


class _Lz4FrameDecoder:
    """lz4 frame decoding across frame boundaries (clients may send one frame per block)."""

    def __init__(self) -> None:
        self._decompressor = lz4.frame.LZ4FrameDecompressor()

    def decode(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            out.append(self._decompressor.decompress(chunk))
            if not self._decompressor.eof:
                break
            chunk = self._decompressor.unused_data
            self._decompressor = lz4.frame.LZ4FrameDecompressor()
        return b"".join(out)


class StreamEncoder:
    """Incremental encoder for a response ``Content-Encoding`` chosen from ``Accept-Encoding``."""

    PREFERENCE = ("zstd", "lz4", "gzip", "deflate")

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        if encoding == "zstd":
            compressor = zstandard.ZstdCompressor(level=1).compressobj()
            self.encode: Codec = compressor.compress
            self.finish: Callable[[], bytes] = compressor.flush
        elif encoding == "lz4":
            lz4_compressor = lz4.frame.LZ4FrameCompressor()
            started: list[bool] = []

            def encode_lz4(chunk: bytes) -> bytes:
                prefix = b"" if started else lz4_compressor.begin()
                started.append(True)
                return prefix + lz4_compressor.compress(chunk)

            def finish_lz4() -> bytes:
                prefix = b"" if started else lz4_compressor.begin()
                return prefix + lz4_compressor.flush()

            self.encode, self.finish = encode_lz4, finish_lz4
        else:
            deflater = zlib.compressobj(3, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
            self.encode, self.finish = deflater.compress, deflater.flush

    @classmethod
    def negotiate(cls, accept_encoding: str | None) -> StreamEncoder | None:
        if not accept_encoding:
            return None
        offered = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
        for encoding in cls.PREFERENCE:
            if encoding in offered:
                return cls(encoding)
        return None


def _identity(chunk: bytes) -> bytes:
    return chunk


# --- Native output for a client's protocol revision ----------------------------------------
# chdb writes Native as for revision 0 (no block info, DateTime without its time zone); a
# server writes it for the client_protocol_version the client sends. Revisions as ClickHouse
# numbers them (src/Core/ProtocolDefines.h):
REVISION_WITH_BLOCK_INFO = 51903
REVISION_WITH_TIME_ZONE_PARAMETER = 54337
REVISION_WITH_CUSTOM_SERIALIZATION = 54454
# BlockInfo as a server writes it: field 1 is_overflows=false, field 2 bucket_num=-1, end.
BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"

_FIXED_WIDTH = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Enum8", "Nothing"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Enum16", "Date", "BFloat16"), 2),
    **dict.fromkeys(
        ("UInt32", "Int32", "Float32", "DateTime", "Date32", "IPv4", "Decimal32", "Time"), 4
    ),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Decimal64", "Time64"), 8),
    **dict.fromkeys(("UInt128", "Int128", "Decimal128", "UUID", "IPv6"), 16),
    **dict.fromkeys(("UInt256", "Int256", "Decimal256"), 32),
}
# LowCardinality index serialization (SerializationLowCardinality.cpp)
_LC_HAS_ADDITIONAL_KEYS = 1 << 9
_LC_INDEX_WIDTH = {0: 1, 1: 2, 2: 4, 3: 8}


class UnknownLayout(Exception):
    """A column type whose Native data layout this module does not know."""


def split_type(type_name: str) -> tuple[str, list[str]]:
    """``Map(String, Array(UInt8))`` -> ``("Map", ["String", "Array(UInt8)"])``."""
    type_name = type_name.strip()
    open_at = type_name.find("(")
    if open_at < 0 or not type_name.endswith(")"):
        return type_name, []
    arguments, current, depth, quote = [], [], 0, ""
    for char in type_name[open_at + 1 : -1]:
        if quote:
            current.append(char)
            if char == quote and (len(current) < 2 or current[-2] != "\\"):
                quote = ""
            continue
        if char in "'`\"":
            quote = char
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            arguments.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    arguments.append("".join(current).strip())
    return type_name[:open_at], [a for a in arguments if a]


def _tuple_element_type(element: str) -> str:
    """A Tuple element without its name: ``a UInt8`` -> ``UInt8``, ``UInt8`` -> ``UInt8``."""
    head = element.split("(", 1)[0]
    if " " in head.strip() or element.startswith("`"):
        if element.startswith("`"):
            return element[element.index("`", 1) + 1 :].strip()
        return element.split(" ", 1)[1].strip()
    return element


class NativeBlocks:
    """Walks Native data block by block, column by column (the data bytes are skipped)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def string(self) -> bytes:
        size = self.varint()
        start = self.position
        self.position += size
        return self.data[start : self.position]

    def uint64(self) -> int:
        value = int.from_bytes(self.data[self.position : self.position + 8], "little")
        self.position += 8
        return value

    def skip(self, type_name: str, rows: int) -> None:
        """Move past ``rows`` values of ``type_name`` (default serialization)."""
        if rows == 0:
            return
        name, arguments = split_type(type_name)
        if name in _FIXED_WIDTH:
            self.position += _FIXED_WIDTH[name] * rows
        elif name == "String":
            for _ in range(rows):
                size = self.varint()  # (position += varint() would add to the old position)
                self.position += size
        elif name == "FixedString":
            self.position += int(arguments[0]) * rows
        elif name == "Decimal":
            precision = int(arguments[0])
            width = 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32
            self.position += width * rows
        elif name == "Nullable":
            self.position += rows
            self.skip(arguments[0], rows)
        elif name in ("Array", "Map"):
            self.position += 8 * rows
            nested = self.uint64_at(self.position - 8)
            elements = arguments if name == "Map" else [arguments[0]]
            for element in elements:
                self.skip(element, nested)
        elif name == "Tuple":
            for element in arguments:
                self.skip(_tuple_element_type(element), rows)
        elif name == "SimpleAggregateFunction":
            self.skip(arguments[-1], rows)
        elif name == "LowCardinality":
            self._skip_low_cardinality(arguments[0], rows)
        else:
            raise UnknownLayout(type_name)
        if self.position > len(self.data):
            raise UnknownLayout(f"{type_name}: data ends early")

    def uint64_at(self, position: int) -> int:
        return int.from_bytes(self.data[position : position + 8], "little")

    def _skip_low_cardinality(self, nested: str, rows: int) -> None:
        self.uint64()  # the keys' serialization version
        dictionary_type = nested
        name, arguments = split_type(nested)
        if name == "Nullable":
            dictionary_type = arguments[0]
        read = 0
        while read < rows:
            index_type = self.uint64()
            if index_type & _LC_HAS_ADDITIONAL_KEYS:
                self.skip(dictionary_type, self.uint64())
            count = self.uint64()
            self.position += _LC_INDEX_WIDTH[index_type & 0xFF] * count
            read += count


def write_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string(value: bytes) -> bytes:
    return write_varint(len(value)) + value


class NativeRevision:
    """Rewrites chdb's Native output the way a server writes it for ``revision``.

    * From REVISION_WITH_BLOCK_INFO each block starts with its BlockInfo.
    * From REVISION_WITH_TIME_ZONE_PARAMETER a ``DateTime`` column keeps its time zone
      (``real_types``: the result's column types as the engine knows them).
    * From REVISION_WITH_CUSTOM_SERIALIZATION each column header ends with a flag byte
      (0: default serialization, which is what chdb writes for revision 0).

    LowCardinality columns need nothing: chdb keeps them at revision 0, as a server does.
    A block is rewritten up to its last column that changes; the rest is copied as it is.
    """

    def __init__(self, revision: int, real_types: list[str] | None = None) -> None:
        self.revision = revision
        self.real_types = real_types
        self.flags = revision >= REVISION_WITH_CUSTOM_SERIALIZATION

    def wants_types(self, data: bytes) -> bool:
        """Whether the real column types are needed before ``data`` (the first block) can be
        converted: only when a column may be a DateTime that lost its time zone (a column
        header ``DateTime`` is these bytes; a match in the data only costs a DESCRIBE)."""
        return (
            self.real_types is None
            and self.revision >= REVISION_WITH_TIME_ZONE_PARAMETER
            and b"\x08DateTime" in data
        )

    @staticmethod
    def requested(params: dict[str, str], output_format: str) -> int:
        """The revision a request asks Native output for (0: none, as chdb writes it)."""
        raw = params.get("client_protocol_version", "")
        if output_format.lower() != "native" or not raw.isdigit():
            return 0
        return int(raw)

    def convert(self, data: bytes, walk_all: bool = False) -> bytes:
        """One or more whole blocks of chdb's Native output, rewritten.

        ``walk_all``: ``data`` may hold several blocks (each needs its BlockInfo), so every
        column is walked; otherwise ``data`` is one block (a streamed fetch)."""
        try:
            return self._convert(data, walk_all)
        except (UnknownLayout, IndexError) as error:
            raise ClickHouseError.named(
                "NOT_IMPLEMENTED",
                f"Native output for client_protocol_version {self.revision} with a column of "
                f"type {error} is not supported by the embedded warehouse",
            ) from None

    def _convert(self, data: bytes, walk_all: bool) -> bytes:
        blocks = NativeBlocks(data)
        real_types = self.real_types or []
        out: list[bytes] = []
        while blocks.position < len(data):
            if self.revision >= REVISION_WITH_BLOCK_INFO:
                out.append(BLOCK_INFO)
            start = blocks.position
            columns, rows = blocks.varint(), blocks.varint()
            out.append(data[start : blocks.position])
            last_change = columns - 1 if (self.flags or walk_all) else self._last_change(columns)
            for index in range(columns):
                if index > last_change:
                    out.append(data[blocks.position :])
                    blocks.position = len(data)
                    break
                name, type_name = blocks.string(), blocks.string().decode()
                real = type_name
                if (
                    type_name == "DateTime"
                    and index < len(real_types)
                    and self.revision >= REVISION_WITH_TIME_ZONE_PARAMETER
                    and real_types[index].startswith("DateTime(")
                ):
                    real = real_types[index]
                out.append(_string(name) + _string(real.encode()))
                if self.flags:
                    out.append(b"\x00")
                column_start = blocks.position
                blocks.skip(type_name, rows)
                out.append(data[column_start : blocks.position])
        return b"".join(out)

    def _last_change(self, columns: int) -> int:
        if self.revision < REVISION_WITH_TIME_ZONE_PARAMETER:
            return -1
        changed = [
            i
            for i, real in enumerate((self.real_types or [])[:columns])
            if real.startswith("DateTime(")
        ]
        return changed[-1] if changed else -1

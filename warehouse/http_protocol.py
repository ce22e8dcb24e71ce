"""ClickHouse HTTP-interface rules the embedded endpoint follows, free of any I/O.

Everything here mirrors what a ClickHouse server does with an HTTP request: which URL
parameters are settings and which are transport controls, how errors are shaped and which
HTTP status they get, and the streaming (de)compressors for
``Content-Encoding``/``Accept-Encoding``. The statement's text is read by
``warehouse/sql_text.py``, Native output rewritten by ``warehouse/native_revision.py``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

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


# --- compression ------------------------------------------------------------------------

Codec = Callable[[bytes], bytes]


class StreamDecoder:
    """Incremental decoder of a request ``Content-Encoding`` (gzip, deflate, lz4, zstd)."""

    def __init__(self, encoding: str | None) -> None:
        encoding = (encoding or "").strip().lower()
        self._finish: Callable[[], bytes] = lambda: b""
        self.identity = encoding in ("", "identity", "none")
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

"""Reading one request of the ClickHouse HTTP interface: URL parameters and headers kept byte
for byte, the credentials, the body (decoded chunk by chunk, size-limited) and multipart forms
with external tables."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from warehouse.http_protocol import ClickHouseError, StreamDecoder
from warehouse.response import ClientGone
from warehouse.sessions import MAX_SESSION_TIMEOUT_S, ExternalTable
from warehouse.socket_body import SocketTail, take_socket_tail
from warehouse.sql_text import engine_text

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


def url_parameters(scope: Scope) -> dict[str, str]:
    # surrogateescape keeps bytes that are not UTF-8 (engine_text restores them for chdb)
    return dict(
        parse_qsl(
            scope["query_string"].decode("utf-8", "surrogateescape"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="surrogateescape",
        )
    )


def header_map(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def has_query(scope: Scope) -> bool:
    return b"query=" in scope.get("query_string", b"")


def authenticate(
    params: dict[str, str], headers: dict[str, str], expected_user: str, expected_password: str
) -> None:
    """Raise AUTHENTICATION_FAILED unless the request names the one user and its password."""
    user = headers.get("x-clickhouse-user") or params.get("user")
    password = headers.get("x-clickhouse-key") or params.get("password")
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        with contextlib.suppress(ValueError):
            decoded = base64.b64decode(authorization[6:].strip()).decode()
            user, _, password = decoded.partition(":")
    user = user or "default"
    password = password or ""
    # both comparisons always run: a short cut would tell which user names exist
    user_matches = hmac.compare_digest(engine_text(user), engine_text(expected_user))
    password_matches = hmac.compare_digest(engine_text(password), engine_text(expected_password))
    if not (user_matches and password_matches):
        raise ClickHouseError.named(
            "AUTHENTICATION_FAILED",
            f"{user}: Authentication failed: password is incorrect, or there is no user "
            "with such name",
        )


def check_body(params: dict[str, str], headers: dict[str, str], max_body_bytes: int) -> int | None:
    """Refuse, before reading it, a body that is declared too large or that would be misread;
    return its declared length."""
    declared = headers.get("content-length")
    length = int(declared) if declared and declared.isdigit() else None
    if length is not None and length > max_body_bytes:
        raise too_large(max_body_bytes)
    if params.get("decompress") in ("1", "true"):
        # Read as plain data, such a body would be stored as garbage or misreported.
        raise ClickHouseError.named(
            "NOT_IMPLEMENTED",
            "decompress=1 (ClickHouse's own compressed request body) is not supported "
            "by the embedded warehouse; send Content-Encoding: gzip, zstd or lz4 instead",
        )
    return length


async def external_tables(
    body: BodyReader, headers: dict[str, str], params: dict[str, str]
) -> list[ExternalTable]:
    """A multipart form's fields joined to ``params``, its files as external tables."""
    if not headers.get("content-type", "").startswith("multipart/form-data"):
        return []
    fields, files = form_parts(headers["content-type"], await body.read_all())
    params.update(fields)
    return [ExternalTable.from_request(n, d, params) for n, d in files.items()]


class BodyReader:
    """The request body, decoded chunk by chunk, with the size limit enforced."""

    def __init__(
        self,
        receive: Receive,
        encoding: str | None,
        max_bytes: int,
        content_length: int | None = None,
    ) -> None:
        self._receive = receive
        self._decoder = StreamDecoder(encoding)
        self._max_bytes = max_bytes
        self._content_length = content_length
        self._received = 0
        self._pending: list[bytes] = []
        self.finished = False
        self.socket_taken = False  # the rest of the body is read from the socket directly

    def push_back(self, data: bytes) -> None:
        if data:
            self._pending.append(data)

    async def read(self) -> bytes | None:
        """The next decoded chunk; None once the body is exhausted."""
        if self._pending:
            return self._pending.pop(0)
        while not self.finished:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            raw = message.get("body", b"")
            self._received += len(raw)
            if self._received > self._max_bytes:
                raise too_large(self._max_bytes)
            if not message.get("more_body", False):
                self.finished = True
                tail = self._decoder.decode(raw) + self._decoder.finish()
                if tail:
                    return tail
                return None
            decoded = self._decoder.decode(raw)
            if decoded:
                return decoded
        return None

    async def read_all(self) -> bytes:
        """The whole (decoded) body; the size limit applies after decompression too."""
        chunks, size = [], 0
        while (chunk := await self.read()) is not None:
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_bytes:
                raise too_large(self._max_bytes)
        return b"".join(chunks)

    def take_socket(self) -> SocketTail | None:
        """The rest of a large plain body, to be read from the socket (socket_body.py); None
        if it must go through the server's messages."""
        if self.finished or self._pending or not self._decoder.identity:
            return None
        if self._content_length is None:
            return None
        tail = take_socket_tail(self._receive, self._received, self._content_length)
        if tail is not None:
            self.finished = self.socket_taken = True
        return tail

    async def wait_for_disconnect(self) -> None:
        """Return when the client goes away (only once the body has been read)."""
        if not self.finished or self.socket_taken:
            await asyncio.Event().wait()  # the body is still being read elsewhere
        while (await self._receive())["type"] != "http.disconnect":
            pass


def too_large(limit: int) -> ClickHouseError:
    return ClickHouseError.named(
        "QUERY_IS_TOO_LARGE",
        f"Request body exceeds the limit of {limit} bytes (TRACKHOUSE_WAREHOUSE_MAX_BODY_BYTES)",
    )


def readonly_error() -> ClickHouseError:
    return ClickHouseError.named(
        "READONLY",
        "Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
        "readonly. You should use method POST for modifying queries",
    )


def session_timeout(params: dict[str, str]) -> float | None:
    raw = params.get("session_timeout")
    if not raw:
        return None
    try:
        timeout = float(raw)
    except ValueError:
        timeout = -1
    if not 0 < timeout <= MAX_SESSION_TIMEOUT_S:
        raise ClickHouseError.named(
            "INVALID_SESSION_TIMEOUT",
            f"Invalid session timeout: '{raw}', must be in (0, {MAX_SESSION_TIMEOUT_S}]",
        )
    return timeout


def form_parts(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """A multipart/form-data body: text fields (the query, bind parameters) and file parts
    (external tables)."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename():
            files[str(name)] = data
        else:
            fields[str(name)] = data.decode("utf-8", "surrogateescape")
    return fields, files

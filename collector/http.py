"""Request plumbing shared by the routers: client IP, body limit, CORS headers, errors, and
the plain-ASGI reading and answering of the ingestion fast path."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.types import Message, Receive, Scope, Send

# the client-address rule is shared with the dashboards' login limits, so it lives in the ground
from trackhouse.client_address import PROXY_IP_HEADERS as PROXY_IP_HEADERS
from trackhouse.client_address import SDK_IP_HEADERS as SDK_IP_HEADERS
from trackhouse.client_address import client_ip as client_ip

log = logging.getLogger(__name__)

# Headers a browser SDK sends (preflight must allow them).
ALLOWED_HEADERS = (
    "content-type, openpanel-client-id, openpanel-sdk-name, openpanel-sdk-version, "
    "openpanel-client-secret, x-client-ip"
)
class JSON(JSONResponse):
    """A JSON answer serialised by orjson (fast, and strict about invalid text)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status_code`` (and headers)."""

    def __init__(self, status_code: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = dict(headers or {})


@dataclass(slots=True)
class Incoming:
    """What the ingestion handlers read of a request, taken from its ASGI scope in one pass:
    the headers (names lowercased by the server; a repeated header keeps its last value),
    the peer's address and the query string."""

    headers: dict[str, str]
    peer: str
    query: str

    @classmethod
    def from_scope(cls, scope: Scope) -> Incoming:
        client = scope.get("client")
        return cls({name.decode("latin-1"): value.decode("latin-1")
                    for name, value in scope["headers"]},
                   client[0] if client else "", scope.get("query_string", b"").decode("latin-1"))


# An ingestion handler: a plain function of (the app's state, the request's scope parts, a
# body reader taking its size limit) answering (JSON content, headers) or raising ApiError.
# ``collector.fastpath`` calls it straight from ASGI, its FastAPI route through FastAPI.
ReadBody = Callable[[int], Awaitable[bytes]]
Handler = Callable[[Any, "Incoming", ReadBody], Awaitable[tuple[dict[str, Any], dict[str, str]]]]


class ClientGone(Exception):
    """The client disconnected before its body arrived: nothing to answer."""


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body is larger than {limit} bytes")


async def _collect(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """A body from its chunks, refusing (413) anything over ``limit`` bytes before reading it
    all."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body (at most ``limit`` bytes, else 413)."""
    return await _collect(request.stream(), request.headers.get("content-length"), limit)


async def _receive_chunks(receive: Receive, first: Message | None = None
                         ) -> AsyncIterator[bytes]:
    message = first
    while True:
        if message is None:
            message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
        message = None


async def receive_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The body of a request read straight from ASGI (at most ``limit`` bytes, else 413)."""
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) <= limit:
        # the common case, an event's body in one message: no generator to drive
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body: bytes = message.get("body", b"")
            if len(body) > limit:  # more than it declared
                raise _too_large(limit)
            return body
        return await _collect(_receive_chunks(receive, message), declared, limit)
    return await _collect(_receive_chunks(receive), declared, limit)


def decode_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "empty body: send a JSON message")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"invalid JSON: {error}") from None


def decode_ndjson(body: bytes) -> list[Any]:
    items = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as error:
            raise ApiError(400, f"invalid JSON on line {number}: {error}") from None
    return items


def error_answer(error: Exception, origin: str | None, path: str
                 ) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) of the answer to an error raised while handling a request:
    an ``ApiError`` as itself, readable cross-origin (a browser SDK must see a 401 to stop
    retrying); Redis unavailable as 503 with Retry-After (the SDKs retry it); anything else
    500 (logged). The answer stays JSON, as the SDKs require."""
    if isinstance(error, ApiError):
        headers = {**error.headers}
        if origin:
            headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
        status, message = error.status_code, error.message
    elif isinstance(error, RedisError):
        log.warning("Redis unavailable: %s", error)
        status, message = 503, "the ingestion buffer is unavailable; retry later"
        headers = {"Retry-After": "5"}
    else:
        log.error("unexpected error on %s", path, exc_info=error)
        status, message, headers = 500, "internal error", {}
    return status, {"error": message, "statusCode": status}, headers


async def send_json(send: Send, status: int, content: Any, headers: Mapping[str, str]) -> None:
    """Answer with ``content`` as JSON, straight through ASGI."""
    body = orjson.dumps(content)
    raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
           *_raw_headers(tuple(headers.items()))]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


@lru_cache(maxsize=4_096)
def _raw_headers(items: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """Headers as ASGI sends them (an origin's CORS headers repeat request after request)."""
    return tuple((name.lower().encode("latin-1"), value.encode("latin-1"))
                 for name, value in items)


def cors_headers(origin: str | None, allowed: bool) -> dict[str, str]:
    """Headers that let a browser on ``origin`` read the answer (only when it is allowed)."""
    if not origin or not allowed:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

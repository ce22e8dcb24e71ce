"""Request plumbing shared by the routers: client IP, body limit, CORS headers, errors."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse, Response

# Headers a browser SDK sends (preflight must allow them).
ALLOWED_HEADERS = (
    "content-type, openpanel-client-id, openpanel-sdk-name, openpanel-sdk-version, "
    "openpanel-client-secret, x-client-ip"
)
# Forwarding headers believed only from trusted proxies, in order of preference.
SDK_IP_HEADERS = ("openpanel-client-ip", "x-client-ip")
PROXY_IP_HEADERS = ("cf-connecting-ip", "true-client-ip")


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


def error_response(status_code: int, message: str, headers: Mapping[str, str] | None = None
                   ) -> Response:
    return JSON({"error": message, "statusCode": status_code},
                          status_code=status_code, headers=dict(headers or {}))


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress._BaseNetwork, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in trusted)


@lru_cache(maxsize=65_536)
def _is_trusted(ip: str, trusted: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in _networks(trusted))


@lru_cache(maxsize=65_536)
def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _first_valid(value: str | None) -> str | None:
    # ipaddress parsing costs more than the rest of the lookup: visitors repeat, so cache
    return _valid_ip(value) if value else None


def client_ip(request: Request, trusted_proxies: Iterable[str], *, secret_client: bool,
              headers: Mapping[str, str] | None = None) -> str:
    """The visitor's IP.

    ``openpanel-client-ip`` (or ``x-client-ip``) comes from server-side SDKs: believed when
    the sender proved its secret or is a trusted proxy. ``cf-connecting-ip``,
    ``true-client-ip`` and ``x-forwarded-for`` are believed only from trusted proxies; in
    ``x-forwarded-for`` the rightmost address that is not itself a trusted proxy is the
    visitor.
    """
    peer = request.client.host if request.client else ""
    trusted = tuple(trusted_proxies)
    from_proxy = _is_trusted(peer, trusted)
    if headers is None:
        headers = request.headers
    if secret_client or from_proxy:
        # server-side SDKs forward the visitor's IP in these two
        for name in SDK_IP_HEADERS:
            found = _first_valid(headers.get(name))
            if found:
                return found
    if from_proxy:
        for name in PROXY_IP_HEADERS:
            found = _first_valid(headers.get(name))
            if found:
                return found
        forwarded = headers.get("x-forwarded-for")
        if forwarded:
            hops = [h for h in (_first_valid(p) for p in forwarded.split(",")) if h]
            for hop in reversed(hops):
                if not _is_trusted(hop, trusted):
                    return hop
            if hops:
                return hops[0]
    return peer


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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


def cors_headers(origin: str | None, allowed: bool) -> dict[str, str]:
    """Headers that let a browser on ``origin`` read the answer (only when it is allowed)."""
    if not origin or not allowed:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

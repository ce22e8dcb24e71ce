"""Which ``Host`` and ``Origin`` headers a Trackhouse service answers: the one contract every
service (warehouse, collector, dashboards, Dagster UI) imports.

A page on any web site can make the operator's browser send requests to 127.0.0.1, and with
DNS rebinding (a name of the attacker's that first resolves to their server, then to
127.0.0.1) even read the answers: the browser then sends the attacker's name as ``Host``.
So a service answers only the names it is known by: loopback names, the address it binds, and
the names the operator configured (``TRACKHOUSE_*_ALLOWED_HOSTS``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import orjson

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})


def split_host(header: str | None) -> tuple[str, int | None] | None:
    """``Host`` header -> (lower-case name without trailing dot, port); None if malformed."""
    if not header:
        return None
    try:
        parts = urlsplit(f"//{header.strip()}")
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name or parts.username is not None or parts.password is not None or parts.path:
        return None
    return name.rstrip("."), port


def _is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class AllowedHosts:
    """Loopback names and addresses, the bind address, and configured names (``name`` or
    ``*.example.com`` for its subdomains; ``*`` for any host). Ports are ignored."""

    def __init__(self, configured: Iterable[str] = (), bind_host: str | None = None) -> None:
        names = {name.strip().lower().rstrip(".") for name in configured if name.strip()}
        if bind_host and bind_host not in WILDCARD_BINDS:
            names.add(bind_host.strip("[]").lower())
        self.any = "*" in names
        self.suffixes = tuple(name[1:] for name in names if name.startswith("*."))
        self.names = frozenset(name for name in names if not name.startswith("*"))

    def allows(self, header: str | None) -> bool:
        if self.any:
            return True
        host = split_host(header)
        if host is None:
            return False
        name = host[0]
        return _is_loopback(name) or name in self.names or name.endswith(self.suffixes)


def same_origin(origin: str, host_header: str | None) -> bool:
    """Whether a browser's ``Origin`` names the host the request was sent to (ports compared
    when both carry one: behind a TLS proxy the ``Host`` often has none)."""
    host = split_host(host_header)
    try:
        parts = urlsplit(origin.strip())
        origin_name, origin_port = parts.hostname, parts.port
    except ValueError:
        return False
    if host is None or not origin_name:
        return False
    if origin_name.rstrip(".") != host[0]:
        return False
    return origin_port is None or host[1] is None or origin_port == host[1]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def refuse(scope: Scope, send: Send, status: int, message: str, *, json: bool) -> None:
    """Answer an HTTP request (or turn a WebSocket down) with ``status`` and a sentence."""
    if json:
        body = orjson.dumps({"error": message, "statusCode": status})
        content_type = b"application/json"
    else:
        body = message.encode() + b"\n"
        content_type = b"text/plain; charset=utf-8"
    prefix = ""
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            # closing before accepting: the server turns the handshake down with 403
            await send({"type": "websocket.close", "code": 1008})
            return
        prefix = "websocket."
    await send({"type": f"{prefix}http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": f"{prefix}http.response.body", "body": body})


def foreign_host_message(host_header: str | None, setting: str) -> str:
    return (f"Host {host_header!r} is not one this service answers (DNS rebinding protection); "
            f"add the name to {setting} to allow it")


class HostGuard:
    """ASGI middleware: refuses requests whose ``Host`` is not allowed (403), except on
    ``public_paths``; with ``same_origin_only``, also browser requests from other origins."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed: AllowedHosts,
        setting: str,
        public_paths: Iterable[str] = (),
        same_origin_only: bool = False,
        json: bool = False,
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.setting = setting
        self.public_paths = frozenset(public_paths)
        self.same_origin_only = same_origin_only
        self.json = json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        host = header(scope, b"host")
        if not self.allowed.allows(host):
            await refuse(scope, send, 403, foreign_host_message(host, self.setting), json=self.json)
            return
        origin = header(scope, b"origin")
        if self.same_origin_only and origin is not None and not same_origin(origin, host):
            await refuse(scope, send, 403, f"cross-origin requests (Origin {origin!r}) are "
                         "refused", json=self.json)
            return
        await self.app(scope, receive, send)

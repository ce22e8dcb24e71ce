"""``POST /track`` and ``POST /track/batch`` answered straight from ASGI, outside FastAPI.

FastAPI's per-request machinery (its middleware stack, routing, Request and Response objects)
costs several times a bare endpoint's own work (ADR 0022). The ingestion endpoints are the hot
path, so ``CollectorApp`` puts this layer outermost: it answers the paths of the handlers it
is given (``routers.track.HANDLERS``, the very handlers the FastAPI routes call) with the
same errors, and passes every other request (documentation, health, preflight, the other
trackers) to FastAPI unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from collector.http import ClientGone, Handler, Incoming, error_answer, receive_body, send_json


class IngestFastPath:
    def __init__(self, app: ASGIApp, handlers: Mapping[str, Handler]) -> None:
        self.app = app
        self.handlers = handlers  # by path, for POST

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (self.handlers.get(scope["path"])
                   if scope["type"] == "http" and scope["method"] == "POST" else None)
        if handler is None:
            await self.app(scope, receive, send)
            return
        incoming = Incoming.from_scope(scope)
        try:
            content, headers = await handler(
                scope["app"].state.collector, incoming,
                lambda limit: receive_body(receive, incoming.headers, limit))
            status = 200
        except ClientGone:
            return
        except Exception as error:  # every error is answered in JSON, as the SDKs expect
            status, content, headers = error_answer(error, incoming.headers.get("origin"),
                                                    scope["path"])
        await send_json(send, status, content, headers)


class CollectorApp(FastAPI):
    """The collector's FastAPI application, with the ingestion fast path outermost for the
    ``fast_paths`` handlers (none: FastAPI's documented routes answer, as the tests
    compare)."""

    def __init__(self, *args: Any, fast_paths: Mapping[str, Handler] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_paths = dict(fast_paths or {})

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return IngestFastPath(stack, self.fast_paths) if self.fast_paths else stack

"""``POST /track`` and ``POST /track/batch`` answered straight from ASGI, outside FastAPI.

FastAPI's per-request machinery (its middleware stack: error, telemetry, body-limit,
exception and exit-stack layers; routing; Request and Response objects) costs more than a
bare endpoint's own work: in-process, a bare FastAPI JSON endpoint took 35 us of CPU per
request, the same endpoint as a plain ASGI function 5 us. The ingestion endpoints are the
hot path, so ``CollectorApp`` puts this layer outermost: it answers those two routes with
the very handlers the FastAPI routes call (``routers.track``), with the same errors, and
passes every other request (documentation, health, preflight, the other trackers) to
FastAPI unchanged.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from collector.http import ClientGone, Incoming, error_answer, receive_body, send_json
from collector.routers.track import HANDLERS


class IngestFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (HANDLERS.get(scope["path"])
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
    """The collector's FastAPI application, with the ingestion fast path outermost (unless
    ``fast_path=False``: then FastAPI's documented routes answer, as the tests compare)."""

    def __init__(self, *args: Any, fast_path: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_path = fast_path

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return IngestFastPath(stack) if self.fast_path else stack

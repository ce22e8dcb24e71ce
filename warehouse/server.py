"""The embedded warehouse: chdb served over ClickHouse's HTTP interface.

One process owns the chdb data directory and answers the ClickHouse HTTP protocol, so
clickhouse-connect, dbt-clickhouse and curl use it exactly like a ClickHouse server. A plain
ASGI application on uvicorn keeps the per-request overhead small; every chdb call runs in a
worker thread (chdb releases the GIL), so a long query blocks neither ``/ping`` nor other
clients. Request bodies are decoded and fed to the engine as they arrive, and results are
streamed back block by block, so neither is held whole in memory.

This module routes requests and owns the engine and its threads. A query request is read by
``request.py``, given a connection by ``connections.py``, run by ``query.py`` (inserts by
``inserts.py``, streamed results by ``result_stream.py``, cancellation by
``cancellation.py``) and answered by ``response.py``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from warehouse import access, http_protocol
from warehouse.allocator import keep_body_buffers_in_the_heap
from warehouse.cancellation import QUERY_TAG_PREFIX
from warehouse.connections import run_request
from warehouse.http_protocol import ClickHouseError, StreamEncoder
from warehouse.request import (
    BodyReader,
    authenticate,
    check_body,
    external_tables,
    has_query,
    header_map,
    url_parameters,
)
from warehouse.response import ClientGone, Responder, plain
from warehouse.sessions import Engine
from warehouse.socket_answer import SocketAnswer
from warehouse.sql_text import engine_text

log = logging.getLogger("trackhouse.warehouse")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar("T")


class WarehouseApp:
    """The ASGI application: ClickHouse's HTTP interface over one chdb engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        user: str = "default",
        password: str = "",
        max_body_bytes: int = 1 << 30,
        max_workers: int = 64,
        access_policy: access.AccessPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.access_policy = access_policy or access.AccessPolicy()
        self.user = user
        self.password = password
        self.max_body_bytes = max_body_bytes
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="chdb")
        # Cancellations run on threads of their own: with every worker busy on abandoned
        # queries, a kill queued behind them would never run.
        self.control = ThreadPoolExecutor(max_workers=4, thread_name_prefix="chdb-control")
        self._reaper: asyncio.Task | None = None
        http_protocol.ENGINE_VERSION = engine.version

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, partial(function, *args)
        )

    async def in_control(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.control, partial(function, *args)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if (refusal := self.access_policy.refusal(scope)) is not None:
            await access.refuse(send, refusal)
            return
        path = scope["path"]
        method = scope["method"]
        if path in ("/ping", "/replicas_status") or (
            path == "/" and method in ("GET", "HEAD") and not has_query(scope)
        ):
            await plain(send, 200, b"Ok.\n")
            return
        if path not in ("/", "/query"):
            await plain(send, 404, b"There is no handle " + engine_text(path) + b"\n")
            return
        await self.handle_query(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._reaper = asyncio.create_task(self._reap_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._reaper:
                    self._reaper.cancel()
                # uvicorn has let in-flight requests finish (or given up on them); a query
                # still running in a worker thread is stopped before its connection closes.
                await self.in_control(self.engine.kill, QUERY_TAG_PREFIX, False)
                await self.in_thread(self.engine.close)
                self.executor.shutdown(wait=False, cancel_futures=True)
                self.control.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.in_thread(self.engine.reap)
            except Exception:  # keep reaping whatever one round hit
                log.exception("session reaper failed")

    # --- one query request ----------------------------------------------------------------
    async def handle_query(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = url_parameters(scope)
        headers = header_map(scope)
        query_id = (
            params.get("query_id") or headers.get("x-clickhouse-query-id") or str(uuid.uuid4())
        )
        encoder = None
        if params.get("enable_http_compression") in ("1", "true"):
            encoder = StreamEncoder.negotiate(headers.get("accept-encoding"))
        responder = Responder(
            send,
            query_id,
            self.engine.timezone,
            encoder,
            partial(SocketAnswer.take, receive, scope["method"]),
        )
        try:
            authenticate(params, headers, self.user, self.password)
            length = check_body(params, headers, self.max_body_bytes)
            body = BodyReader(receive, headers.get("content-encoding"), self.max_body_bytes, length)
            external = await external_tables(body, headers, params)
            read_only = scope["method"] in ("GET", "HEAD")  # as in ClickHouse: GET is readonly
            await run_request(self, params, headers, body, responder, read_only, external)
        except ClientGone:
            responder.clean = False
        except ClickHouseError as error:
            await responder.error(error)
        except Exception as error:  # an unexpected failure still answers like ClickHouse
            log.exception("query %s failed", query_id)
            responder.clean = False
            await responder.error(ClickHouseError.from_engine(error))
        finally:
            await responder.finish_work()
            responder.hand_back()


def serve(
    host: str | None = None, port: int | None = None, data_dir: str | Path | None = None
) -> None:
    """Run the embedded warehouse until SIGTERM/SIGINT (then shut down cleanly)."""
    import uvicorn

    from trackhouse.secure_files import read_or_create_secret
    from trackhouse.settings import get_settings

    settings = get_settings()
    host = host or settings.warehouse_host
    port = port or settings.warehouse_port
    path = Path(data_dir) if data_dir else settings.effective_warehouse_data_dir
    path.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    keep_body_buffers_in_the_heap()
    engine = Engine(str(path), session_timeout_s=settings.warehouse_session_timeout_s)
    app = WarehouseApp(
        engine,
        user=settings.clickhouse_user,
        # never without a password, even when started with TRACKHOUSE_CLICKHOUSE_URL set
        password=settings.clickhouse_password.get_secret_value()
        or read_or_create_secret(settings.warehouse_password_file),
        max_body_bytes=settings.warehouse_max_body_bytes,
        access_policy=access.AccessPolicy.configured(
            settings.warehouse_allowed_hosts, settings.warehouse_allowed_origins, host
        ),
    )
    log.info("warehouse: chdb %s on %s, serving http://%s:%s", engine.version, path, host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=15,
        # Pooled client connections idle between queries; closing them sooner than this
        # only makes clients reconnect (or race a closing socket) more often.
        timeout_keep_alive=30,
        proxy_headers=False,  # nothing here reads the client's address
        loop="auto",
        http="auto",
    )

    def after_graceful_stop(signum: int, frame: Any) -> None:
        """uvicorn handles SIGTERM/SIGINT while it serves (in-flight requests finish, every
        chdb connection is closed) and then re-raises the signal; that second delivery lands
        here so that a clean stop exits with status 0 instead of dying by the signal."""

    signal.signal(signal.SIGTERM, after_graceful_stop)
    signal.signal(signal.SIGINT, after_graceful_stop)
    uvicorn.Server(config).run()
    log.info("warehouse stopped")

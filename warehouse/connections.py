"""Which chdb connection a request runs on, and what happens to it before the answer ends.

A request without ``session_id`` borrows a pooled connection set to its database and
settings and gives it back (or retires it, if the statement changed its state); a request
with one locks its session, runs on the session's connection with its URL overrides, and
records the session's own ``USE``/``SET`` before unlocking it (warehouse/sessions.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warehouse.http_protocol import PARAM_PREFIX, TRANSPORT_PARAMETERS
from warehouse.query import QueryRequest
from warehouse.request import BodyReader, session_timeout
from warehouse.response import Responder
from warehouse.sessions import EngineConnection, ExternalTable, drop_external_tables
from warehouse.sql_text import set_statement_names

if TYPE_CHECKING:
    from warehouse.server import WarehouseApp


async def run_request(
    app: WarehouseApp,
    params: dict[str, str],
    headers: dict[str, str],
    body: BodyReader,
    responder: Responder,
    read_only: bool,
    external: list[ExternalTable],
) -> None:
    settings = {
        k: v
        for k, v in params.items()
        if k not in TRANSPORT_PARAMETERS and not k.startswith(PARAM_PREFIX)
    }
    query_params = {
        k[len(PARAM_PREFIX) :]: v for k, v in params.items() if k.startswith(PARAM_PREFIX)
    }
    database = params.get("database") or headers.get("x-clickhouse-database") or ""
    request = QueryRequest(
        app=app,
        params=params,
        settings=settings,
        query_params=query_params,
        database=database,
        body=body,
        responder=responder,
        read_only=read_only,
        external=external,
    )
    session_id = params.get("session_id")
    if not session_id:
        # The pool hit is a dictionary lookup; only opening a connection needs a thread.
        pooled = app.engine.take_idle(database, settings)
        if pooled is None:
            pooled = await app.in_thread(app.engine.acquire, database, settings)
        connection: EngineConnection = pooled

        def returned() -> EngineConnection | None:
            """Pool the connection; the one to close (it, if its state changed), if any."""
            reusable = request.keeps_state and responder.clean
            return app.engine.give_back(connection) if reusable else connection

        async def give_back() -> None:
            if (retired := returned()) is not None:
                await app.in_thread(retired.close)

        def give_back_in_thread() -> None:
            if (retired := returned()) is not None:
                retired.close()

        responder.before_finish(give_back, give_back_in_thread)
        await request.execute(connection)
        return
    session = await app.in_thread(
        app.engine.lock_session,
        session_id,
        session_timeout(params),
        params.get("session_check") in ("1", "true"),
    )

    def unlock_in_thread() -> None:
        try:
            if external:
                drop_external_tables(session.connection, external)
            if request.keyword == "USE":
                session.remember_use()
            elif request.keyword == "SET" and request.succeeded:
                session.remember_set(set_statement_names(request.sql))
        finally:
            app.engine.unlock_session(session)

    async def unlock() -> None:
        if external or request.keyword in ("USE", "SET"):
            await app.in_thread(unlock_in_thread)  # engine work first
        else:
            app.engine.unlock_session(session)

    responder.before_finish(unlock, unlock_in_thread)
    await app.in_thread(session.prepare, database, settings)
    await request.execute(session.connection)

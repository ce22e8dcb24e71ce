"""A SELECT answered block by block as the engine produces it."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

from warehouse.http_protocol import ClickHouseError
from warehouse.native_revision import NativeRevision
from warehouse.response import ClientGone, Progress
from warehouse.sessions import EngineConnection, engine_params
from warehouse.sql_text import engine_text

if TYPE_CHECKING:
    from warehouse.query import QueryRequest

BATCH_BYTES = 1 << 20  # result bytes per send
SPOOL_MEMORY_BYTES = 16 << 20  # a wait_end_of_query result beyond this waits on disk
# Statements chdb can stream block by block (send_query); others run whole.
STREAMABLE_KEYWORDS = frozenset({"SELECT", "WITH"})
# chdb encodes each streamed block as a complete document of the output format, so only
# formats without a global header or footer may be streamed (a JSON or Arrow answer, or
# CSVWithNames' header, would repeat per block); the others are produced whole.
STREAM_SAFE_FORMATS = frozenset(
    name.lower()
    for name in (
        "Native",
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "CSV",
        "RowBinary",
        "JSONEachRow",
        "JSONCompactEachRow",
        "JSONStringsEachRow",
        "JSONCompactStringsEachRow",
        "JSONLines",
        "NDJSON",
        "LineAsString",
    )
)


def stream_safe(output_format: str) -> bool:
    return output_format.lower() in STREAM_SAFE_FORMATS


async def stream_result(
    request: QueryRequest,
    connection: EngineConnection,
    sql: str,
    default_format: str,
    output_format: str,
) -> None:
    """Answer a SELECT block by block as the engine produces it.

    With ``wait_end_of_query=0`` the answer starts with the first block, as a server
    starts it; an error after that goes into the stream as ClickHouse's tagged exception
    block (clients raise it). With ``wait_end_of_query=1`` (clickhouse-connect's default
    for query()) the answer starts only once the query has finished, so that a late error
    still gets an error status; the result waits in a spooled temporary file (memory up to
    a bound, then disk), as ClickHouse buffers it, rather than whole in memory.
    """
    native = connection.native
    work, responder = request.work, request.responder
    spool = None
    if request.params.get("wait_end_of_query") in ("1", "true"):
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
    progress = Progress()
    handle: list[Any] = []
    requested = NativeRevision.requested(request.params, output_format)
    revision: list[NativeRevision] = []
    spooled = [0]  # bytes written to the spool

    def pull() -> tuple[bytes, bool]:
        """The next block (spooling: every block up to BATCH_BYTES); True at the end."""
        size = 0
        if work.abandoned:  # the client left while this waited for a thread
            raise ClientGone
        try:
            if not handle:
                if requested:
                    revision.append(NativeRevision(requested))
                bound = engine_params(request.query_params)
                handle.append(native.send_query(engine_text(sql), default_format, params=bound))
            while True:
                result = native.streaming_fetch_result(handle[0])
                if result is None or not (result.rows_read() or result.bytes()):
                    return b"", True
                data = bytes(result.bytes())
                progress.add(result, len(data))
                if revision:
                    if revision[0].wants_types(data):  # the stream may run meanwhile
                        revision[0].real_types = request.real_types(connection, sql)
                    data = revision[0].convert(data)
                if spool is None:
                    return data, False
                spool.write(data)
                size += len(data)
                spooled[0] += len(data)
                if size >= BATCH_BYTES:
                    return b"", False
        except RuntimeError as error:
            raise ClickHouseError.from_engine(error) from None

    finished = False
    try:
        data, finished = await work.run(pull)
        if spool is not None:
            while not finished:
                data, finished = await work.run(pull)
            spool.seek(0)
            await responder.start(progress.summary(request.elapsed()), output_format)
            if spooled[0] <= SPOOL_MEMORY_BYTES:
                # Still in memory: read on the loop; a thread hop per piece cost more than that.
                await responder.body(spool.read(), more=False)
                return
            while piece := await request.app.in_thread(spool.read, BATCH_BYTES):
                await responder.body(piece, more=True)
            await responder.body(b"", more=False)
            return
        await responder.start(progress.summary(request.elapsed()), output_format)
        await responder.body(data, more=not finished)
        while not finished:
            try:
                data, finished = await work.run(pull)
            except ClickHouseError as error:
                finished = True  # the failed stream is over; nothing left to cancel
                await responder.error(error)
                return
            await responder.body(data, more=not finished)
    finally:
        if not finished and handle:
            await work.release_stream(native, handle[0])
        if spool is not None:
            spool.close()

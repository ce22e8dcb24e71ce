"""A SELECT answered block by block as the engine produces it."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
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


class ResultStream:
    """A SELECT answered block by block as the engine produces it, by one worker thread.

    With ``wait_end_of_query=0`` the answer starts with the first block, as a server
    starts it; an error after that goes into the stream as ClickHouse's tagged exception
    block (clients raise it). With ``wait_end_of_query=1`` (clickhouse-connect's default
    for query()) the answer starts only once the query has finished, so that a late error
    still gets an error status; the result waits in a spooled temporary file (memory up to
    a bound, then disk), as ClickHouse buffers it, rather than whole in memory.

    The thread that fetches the blocks also sends them (``Responder.*_in_thread``), so a
    result costs one trip to a worker thread, not one per block and one for the end.
    """

    def __init__(
        self,
        request: QueryRequest,
        connection: EngineConnection,
        sql: str,
        default_format: str,
        output_format: str,
    ) -> None:
        self.request = request
        self.native = connection.native
        self.connection = connection
        self.sql = sql
        self.default_format = default_format
        self.output_format = output_format
        self.spool: Any = None
        if request.params.get("wait_end_of_query") in ("1", "true"):
            self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
        self.progress = Progress()
        self.handle: Any = None
        self.requested = NativeRevision.requested(request.params, output_format)
        self.revision: NativeRevision | None = None
        self.spooled = 0  # bytes written to the spool
        self.finished = False  # the engine has ended the stream (or it failed)
        self._answer = self.answer()
        self.done = False  # the whole answer is written

    def answer(self) -> Iterator[None]:
        """Run the query and write its answer (in a worker thread); it yields whenever the
        client's socket is full, to be resumed (``resume``) once the socket is writable."""
        responder = self.request.responder
        data = self.pull()  # a failure here still gets an error status
        if self.spool is not None:
            while not self.finished:
                self.pull()
            responder.start_in_thread(self.summary(), self.output_format)
            self.spool.seek(0)
            # Up to SPOOL_MEMORY_BYTES the result is in memory and goes out in one piece.
            piece = self.spool.read(BATCH_BYTES if self.spooled > SPOOL_MEMORY_BYTES else -1)
            while piece:
                following = self.spool.read(BATCH_BYTES)
                yield from responder.body_in_thread(piece, more=bool(following))
                piece = following
            if not self.spooled:
                yield from responder.body_in_thread(b"", more=False)
            return
        responder.start_in_thread(self.summary(), self.output_format)
        yield from responder.body_in_thread(data, more=not self.finished)
        while not self.finished:
            try:
                data = self.pull()
            except ClickHouseError as error:
                self.finished = True  # the failed stream is over; nothing left to cancel
                yield from responder.error_in_thread(error)
                return
            yield from responder.body_in_thread(data, more=not self.finished)

    def resume(self) -> None:
        """Write the answer on (in a worker thread) until it is complete (``done``) or the
        client's socket is full."""
        for _ in self._answer:
            return
        self.done = True

    async def wait_for_client(self) -> None:
        """On the loop, without a thread: until the client's socket takes more, or the client
        has gone."""
        assert self.request.responder.socket is not None
        gone = asyncio.ensure_future(self.request.body.wait_for_disconnect())
        ready = asyncio.ensure_future(self.request.responder.socket.writable())
        try:
            done, _ = await asyncio.wait({gone, ready}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            ready.cancel()
            # ended, so that its writer is removed before the descriptor is closed
            await asyncio.gather(gone, ready, return_exceptions=True)
        if ready not in done:
            raise ClientGone

    def summary(self) -> dict[str, str]:
        return self.progress.summary(self.request.elapsed())

    def pull(self) -> bytes:
        """The next block (spooling: every block up to BATCH_BYTES, b"" returned)."""
        size = 0
        if self.request.work.abandoned:  # the client left while this waited for a thread
            raise ClientGone
        try:
            if self.handle is None:
                if self.requested:
                    self.revision = NativeRevision(self.requested)
                bound = engine_params(self.request.query_params)
                self.handle = self.native.send_query(
                    engine_text(self.sql), self.default_format, params=bound
                )
            while True:
                result = self.native.streaming_fetch_result(self.handle)
                if result is None or not (result.rows_read() or result.bytes()):
                    self.finished = True
                    return b""
                data = bytes(result.bytes())
                self.progress.add(result, len(data))
                if self.revision is not None:
                    if self.revision.wants_types(data):  # the stream may run meanwhile
                        self.revision.real_types = self.request.real_types(
                            self.connection, self.sql
                        )
                    data = self.revision.convert(data)
                if self.spool is None:
                    return data
                self.spool.write(data)
                size += len(data)
                self.spooled += len(data)
                if size >= BATCH_BYTES:
                    return b""
        except RuntimeError as error:
            raise ClickHouseError.from_engine(error) from None

    async def release(self) -> None:
        """After the answer (on the loop): end a stream its client left, free the spool."""
        if not self.finished and self.handle is not None:
            await self.request.work.release_stream(self.native, self.handle)
        if self.spool is not None:
            self.spool.close()

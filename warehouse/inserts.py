"""An ``INSERT ... FORMAT x`` request: where its statement ends and its data begins, and the
data streamed into the engine as it arrives (through ``warehouse/streaming_insert.py``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, Any

from warehouse.response import ClientGone, summary_figures
from warehouse.sessions import EngineConnection
from warehouse.socket_body import SocketTail
from warehouse.sql_text import NeedMoreData, engine_text, parse_insert_head
from warehouse.streaming_insert import StreamingInsert

if TYPE_CHECKING:
    from warehouse.query import QueryRequest
    from warehouse.request import BodyReader

log = logging.getLogger("trackhouse.warehouse")

HEAD_LIMIT = 256 * 1024  # ClickHouse's max_query_size: the statement must fit in this


async def read_insert_head(body: BodyReader, query_text: str) -> tuple[str, str, bytes] | None:
    """If the request is ``INSERT ... FORMAT x`` + data: (statement, format, first data)."""
    if query_text:
        try:
            head = parse_insert_head(engine_text(query_text), complete=True)
        except NeedMoreData:
            head = None
        if head is None:
            return None
        remainder = engine_text(query_text)[head.data_offset :]
        return head.statement, head.format, remainder
    buffered = b""
    while True:
        chunk = await body.read()
        if chunk is None:
            complete = True
        else:
            buffered += chunk
            complete = False
        try:
            parsed = parse_insert_head(buffered, complete=complete)
        except NeedMoreData:
            if len(buffered) > HEAD_LIMIT:
                parsed = None
            else:
                continue
        if parsed is None:
            body.push_back(buffered)
            return None
        return parsed.statement, parsed.format, buffered[parsed.data_offset :]


async def insert(
    request: QueryRequest,
    connection: EngineConnection,
    statement: str,
    data_format: str,
    first: bytes,
) -> None:
    """Insert the request body (after ``first``, the data already read) and answer."""

    tails: list[SocketTail] = []

    async def body() -> AsyncIterator[bytes]:
        if first:
            yield first
        while (chunk := await request.body.read()) is not None:
            yield chunk
            # After the first read (which also answers Expect: 100-continue) a large plain
            # body's rest may come from the socket directly (ADR 0032).
            if tail := request.body.take_socket():
                request.responder.close_connection = True
                tails.append(tail)
                yield tail.buffered
                return

    result = await stream_into(request, connection, statement, data_format, body(), tails)
    elapsed = request.elapsed()
    summary = summary_figures(0, 0, result.rows_written(), result.bytes_written(), 0, 0, elapsed)
    await request.responder.start(summary, None)
    await request.responder.body(b"", more=False)


async def stream_into(
    request: QueryRequest,
    connection: EngineConnection,
    statement: str,
    data_format: str,
    chunks: AsyncIterator[bytes],
    tails: list[SocketTail] | None = None,
) -> Any:
    """Insert ``chunks`` as they come, then the socket's part of the body if ``tails`` has
    it once they are exhausted; the engine's result once they are committed."""
    feed = StreamingInsert.start(
        partial(request.app.in_thread, connection.run),
        request.tag + statement,
        data_format,
        request.settings,
        request.work.kill,
    )
    try:
        async for chunk in chunks:
            await feed.append(chunk)
        for tail in tails or []:
            if not await feed.splice_from(tail.fd, tail.remaining, request.app.in_thread):
                tail.client_gone()
                raise ClientGone
        return await feed.finish()
    except BaseException:
        try:
            await feed.cancel()
        except Exception:  # the original failure is what the client must hear
            log.exception("query %s: cancelling an abandoned insert failed", request.tag)
        raise


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data

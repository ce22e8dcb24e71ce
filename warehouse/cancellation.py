"""Engine work of one request, run in worker threads and cancelled when its client goes away.

Cancellation never waits inside the engine (ADR 0009): ``KILL QUERY ... ASYNC`` on the
control threads, repeated until the engine work has ended, and given up on (logged) after
CANCEL_WAIT_S. A worker thread is therefore never held by a client that left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from warehouse.response import ClientGone

if TYPE_CHECKING:
    from warehouse.request import BodyReader
    from warehouse.server import WarehouseApp

log = logging.getLogger("trackhouse.warehouse")

T = TypeVar("T")

CANCEL_WAIT_S = 10.0  # a cancelled statement gets this long to end before it is given up on
CANCEL_RETRY_S = 0.25  # a kill that missed (statement not registered yet) is repeated this often
CANCEL_GRACE_S = 0.2  # engine work this close to its end is let finish rather than killed
# Every statement starts with a comment naming its request, so that KILL QUERY can find it
# when the client goes away (chdb does not take a query_id from its caller).
QUERY_TAG_PREFIX = "/* trackhouse-query "


class GuardedWork:
    """The engine work of one request, found by the tag its statements start with."""

    def __init__(self, app: WarehouseApp, body: BodyReader, tag: str) -> None:
        self.app = app
        self.body = body
        self.tag = tag
        self.abandoned = False  # the client went away; engine work not yet started is skipped

    async def kill(self) -> bool:
        """Cancel this request's running statement without waiting for it to end; say
        whether it was found. Never ``KILL ... SYNC``: a streamed query ends only once its
        stream is released, after the kill, so a synchronous kill would wait for itself."""
        return await self.app.in_control(self.app.engine.kill, self.tag.strip(), False)

    async def run(self, work: Callable[[], T]) -> T:
        """Run engine work in a thread; cancel the statement if the client disconnects."""
        future = asyncio.ensure_future(self.app.in_thread(work))
        watcher = asyncio.ensure_future(self.body.wait_for_disconnect())
        try:
            done, _ = await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if future not in done:
                self.abandoned = True
                await self.cancel_until_done(future)
                raise ClientGone
            return future.result()
        finally:
            watcher.cancel()

    async def cancel_until_done(self, future: asyncio.Future[Any]) -> None:
        """Cancel until the engine work ends (its thread is free again) or CANCEL_WAIT_S.

        A kill can miss a statement that is not registered yet, so it is repeated."""
        # A pull of a streamed query usually ends with its block within milliseconds; a kill
        # (serialised in the engine's process list) is for work that does not.
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(future), CANCEL_GRACE_S)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while not future.done() and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                await self.kill()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(future), CANCEL_RETRY_S)
        if not future.done():
            log.error("query %s: still running %.0f s after cancelling", self.tag, CANCEL_WAIT_S)
        elif not future.cancelled():
            future.exception()  # retrieved: the client is gone, nobody else will read it

    async def release_stream(self, native: Any, stream: Any) -> None:
        """End an abandoned streamed query by releasing its stream (a fraction of a
        millisecond, and the producer waiting for its reader gives up); it is killed only if
        that does not end it at once."""
        release = asyncio.ensure_future(self.app.in_control(native.streaming_cancel_query, stream))
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(release), CANCEL_GRACE_S)
        await self.cancel_until_done(release)

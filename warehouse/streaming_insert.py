"""Feeding an HTTP request body into chdb's streaming INSERT as it arrives.

The event loop receives the body in chunks of about 64 KiB; a worker thread appends them to
the engine (chdb parses while the next chunks are received, and releases the GIL while it
does). Chunks travel through a queue, so the loop does not pay a thread hand-off per chunk,
and the queue is bounded by bytes, so a client faster than the engine waits instead of
filling the memory. chdb itself parses small appends best: they keep its pipeline busy.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Executor
from typing import Any

from warehouse.http_protocol import ClickHouseError

MAX_QUEUED_BYTES = 8 << 20


class StreamingInsert:
    """One ``INSERT ... FORMAT x`` whose data is appended by a worker thread."""

    def __init__(
        self, native: Any, handle: Any, loop: asyncio.AbstractEventLoop, executor: Executor
    ) -> None:
        self._native = native
        self._handle = handle
        self._loop = loop
        self._executor = executor
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._queued = 0
        self._lock = threading.Lock()
        self._room = asyncio.Event()
        self._room.set()
        self._error: BaseException | None = None
        self._worker = loop.run_in_executor(executor, self._append_all)

    def _append_all(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is None:
                try:
                    self._native.insert_append(self._handle, chunk)
                except Exception as error:  # a malformed row: the rest is drained unread
                    self._error = error
            with self._lock:
                self._queued -= len(chunk)
                has_room = self._queued < MAX_QUEUED_BYTES
            if has_room:
                self._loop.call_soon_threadsafe(self._room.set)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise ClickHouseError.from_engine(self._error)

    async def append(self, chunk: bytes) -> None:
        """Queue a chunk; waits while the engine is MAX_QUEUED_BYTES behind."""
        self._raise_if_failed()
        while True:
            with self._lock:
                if self._queued < MAX_QUEUED_BYTES:
                    self._queued += len(chunk)
                    break
                self._room.clear()
            await self._room.wait()
            self._raise_if_failed()
        self._chunks.put(chunk)

    async def finish(self) -> Any:
        """Commit the insert once every chunk is in; returns chdb's insert result."""
        self._chunks.put(None)
        await self._worker
        self._raise_if_failed()
        return await self._loop.run_in_executor(
            self._executor, self._native.insert_done, self._handle
        )

    async def cancel(self) -> None:
        """Abort: stop the worker and roll the insert back (idempotent with finish)."""
        self._error = self._error or ClickHouseError.named("QUERY_WAS_CANCELLED", "cancelled")
        self._chunks.put(None)
        await asyncio.shield(self._worker)
        await self._loop.run_in_executor(self._executor, self._native.insert_cancel, self._handle)

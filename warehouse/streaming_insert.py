"""Feeding an HTTP request body into one chdb INSERT as it arrives, and hearing how it ended.

The statement runs as an ordinary query, ``INSERT INTO t FROM INFILE '/dev/fd/N' FORMAT x``,
in a worker thread, while the event loop writes the body's chunks into the other end of
that pipe. An ordinary query reports every failure, including those raised while the last
block is written or committed (partition and constraint checks, memory limits), and returns
only once the data is stored. (chdb's streaming insert API, ``send_insert``/``insert_done``,
swallows exactly those: it answers success and stores nothing; ADR 0003.)

The pipe is the flow control: a client faster than the engine fills it and then waits. An
insert is abandoned (client gone, body too large) by killing its query before the pipe
reaches end-of-file, so that nothing the engine has parsed so far is committed.

This module owns both ends of the pipe and closes each exactly once: the engine's threads
open and close descriptors all the time, so a second close(2) of a number could close one of
theirs (uvloop's pipe transports do that, which is why none is used here).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from warehouse.http_protocol import ClickHouseError
from warehouse.socket_body import splice_all
from warehouse.sql_text import insert_from_file

log = logging.getLogger(__name__)

# Settings of every streamed insert unless the request sets them: the body arrives in chunks
# one thread parses as they come; FROM INFILE's parallel parsing only costs CPU (ADR 0003).
INSERT_DEFAULTS = {"input_format_parallel_parsing": "0"}
PIPE_BYTES = 1 << 20  # Linux's default pipe-max-size; the engine may lag this far behind
CANCEL_TIMEOUT_S = 30.0


class StreamingInsert:
    """One ``INSERT ... FORMAT x`` whose data is written into a pipe the engine reads."""

    def __init__(
        self, query: asyncio.Future[Any], write_fd: int, cancel_query: Callable[[], Awaitable[bool]]
    ) -> None:
        self._query = query
        self._write_fd: int | None = write_fd
        self._cancel_query = cancel_query
        self._ignoring = False  # the engine ended before the data did (no format does this)

    @classmethod
    def start(
        cls,
        run: Callable[[str], Awaitable[Any]],
        statement: str,
        data_format: str,
        settings: dict[str, str],
        cancel_query: Callable[[], Awaitable[bool]],
    ) -> StreamingInsert:
        """Start ``statement`` through ``run`` (which runs SQL on the request's connection,
        whose ``settings`` the request has set).

        ``cancel_query`` kills the running statement without waiting for it and says whether
        it found it; ``statement`` must start with a tag by which it can be found.
        """
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):  # a smaller pipe only costs more wake-ups
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(write_fd, False)
        defaults = {k: v for k, v in INSERT_DEFAULTS.items() if k not in settings}
        query = asyncio.ensure_future(
            run(insert_from_file(statement, f"/dev/fd/{read_fd}", data_format, defaults))
        )
        # Once the engine has stopped reading, writes must fail (EPIPE) rather than wait.
        query.add_done_callback(lambda _: os.close(read_fd))
        return cls(query, write_fd, cancel_query)

    async def append(self, chunk: bytes) -> None:
        """Write a chunk into the pipe; waits while the pipe is full."""
        if not self._ignoring and not await self._write(memoryview(chunk)):
            await self._engine_result()  # raises the engine's error, if it had one
            self._ignoring = True
            log.warning("an INSERT ended before its data did; the rest of the body is ignored")

    async def _write(self, data: memoryview) -> bool:
        """False if the engine closed its end."""
        assert self._write_fd is not None
        loop = asyncio.get_running_loop()
        while data:
            try:
                data = data[os.write(self._write_fd, data) :]
            except BlockingIOError:
                writable = loop.create_future()
                loop.add_writer(self._write_fd, _resolve, writable)
                try:
                    await writable
                finally:
                    loop.remove_writer(self._write_fd)
            except BrokenPipeError:
                return False
        return True

    async def splice_from(
        self, source_fd: int, count: int, in_thread: Callable[..., Awaitable[str]]
    ) -> bool:
        """Move ``count`` bytes from the client's socket into the pipe in a worker thread,
        never through user space (socket_body.py); False if the client went away first."""
        assert self._write_fd is not None
        stop = threading.Event()
        moving = asyncio.ensure_future(
            in_thread(splice_all, source_fd, self._write_fd, count, stop)
        )
        try:
            outcome = await asyncio.shield(moving)
        except BaseException:
            stop.set()  # the pipe must not be closed while the thread still writes into it
            await asyncio.wait({moving})
            raise
        if outcome == "engine gone":
            await self._engine_result()  # raises the engine's error, if it had one
            self._ignoring = True
            log.warning("an INSERT ended before its data did; the rest of the body is ignored")
        return outcome in ("done", "engine gone")

    def _close_pipe(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None

    async def _engine_result(self) -> Any:
        try:
            return await self._query
        except RuntimeError as error:
            raise ClickHouseError.from_engine(error) from None

    async def finish(self) -> Any:
        """End the data and wait until the insert is committed; returns chdb's query result."""
        self._close_pipe()
        return await self._engine_result()

    async def cancel(self) -> None:
        """Abandon the insert: nothing it carried is committed (idempotent with finish)."""
        deadline = time.monotonic() + CANCEL_TIMEOUT_S
        # Until the pipe ends the query cannot finish, so it is killed once it is registered.
        while self._write_fd is not None and not self._query.done():
            if await self._cancel_query():
                break
            if time.monotonic() > deadline:
                log.error("could not cancel an abandoned INSERT; ending its data instead")
                break
            await asyncio.sleep(0.005)
        self._close_pipe()
        with contextlib.suppress(Exception):
            await asyncio.shield(self._query)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

"""Coalesce the Lua-script calls of concurrent requests into one Redis round trip.

``ScriptPipeline`` (the rate-limit counters of requests that store nothing) sends the calls
queued during one loop turn as one pipeline of EVALSHAs; ``AcceptGroups`` (every request
that stores rows) goes further and sends them as ONE call of the accept script, which takes
a group of requests (see ``buffer.ACCEPT``).

Under load many requests are in flight on one event loop; each one's Redis call is queued
here and the calls queued during one loop turn are sent as one pipelined write and read
(EVALSHA x k), so the system calls per request fall as concurrency rises. A request alone
still goes out at once (the flush runs at the end of the current loop turn, no timer), and
a pipeline never waits for an earlier one to come back. Each call keeps its own result and
its own error; the script is atomic per call, exactly as when called alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from collector.buffer import ACCEPT, BUFFER_KEYS, AcceptLimits, AcceptRequest, accept_call

Batch = list[tuple[Any, asyncio.Future]]


class ScriptPipeline:
    def __init__(self, redis: Redis, script: str | bytes, max_batch: int = 256,
                 max_in_flight: int = 1 << 30) -> None:
        self.redis = redis
        self.source = script
        self.sha = ""
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._pending: Batch = []
        self._flushing = False
        self._loaded = False
        self._sending: set[asyncio.Task] = set()  # the loop keeps only weak references

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        return await self.submit(keys, args)

    def submit(self, keys: list[Any], args: list[Any]) -> asyncio.Future:
        """Queue one call; the future resolves with its result (call from the event loop)."""
        return self._queue((keys, args))

    def _queue(self, call: Any) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.append((call, future))
        self._schedule()
        return future

    def _schedule(self) -> None:
        if self._pending and not self._flushing and len(self._sending) < self.max_in_flight:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Send what was queued, each part in one round trip on a connection of its own
        (``_pipeline``: from redis-py's pool here, for the rate-limit calls; ``AcceptGroups``
        sends on its ``PrivateConnections``); parts past ``max_in_flight`` wait for a round
        trip to come back."""
        self._flushing = False
        batch, self._pending = self._pending, []
        parts = self._parts(batch)
        room = self.max_in_flight - len(self._sending)
        loop = asyncio.get_running_loop()
        for part in parts[:room]:
            task = loop.create_task(self._send(part))
            self._sending.add(task)
            task.add_done_callback(self._sent)
        self._pending = [entry for part in parts[room:] for entry in part] + self._pending

    def _sent(self, task: asyncio.Task) -> None:
        self._sending.discard(task)
        self._schedule()

    def _parts(self, batch: Batch) -> list[Batch]:
        """The batch cut into the parts sent concurrently, each in one round trip."""
        return [batch[start:start + self.max_batch]
                for start in range(0, len(batch), self.max_batch)]

    async def _send(self, batch: Batch) -> None:
        try:
            results = await self._execute(batch)
        except Exception as error:  # connection trouble: every caller gets it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: Batch) -> list[Any]:
        if not self._loaded:
            await self._load()
        try:
            results = await self._pipeline(batch)
            if not any(isinstance(result, NoScriptError) for result in results):
                return results
        except NoScriptError:
            pass
        # Redis restarted (or flushed its scripts): load the script and send again. The
        # calls that failed with NOSCRIPT did nothing, so sending them again is safe; those
        # that ran were atomic and idempotent (their dedup keys now answer "duplicate").
        await self._load()
        return await self._pipeline(batch)

    async def _load(self) -> None:
        self.sha = await self.redis.script_load(self.source)
        self._loaded = True

    async def _pipeline(self, batch: Batch) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for (keys, args), _ in batch:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        return await pipe.execute(raise_on_error=False)


class AcceptGroups(ScriptPipeline):
    """The accept-script calls of concurrent requests, sent as one script call per group.

    A group shares the script's fixed work (rate-limit and backlog counters, the dedup sets'
    and session hashes' reads and writes, the buffer append, the call itself), which is most
    of what a single-event request costs Redis. A group is cut at ``max_requests`` requests
    or ``max_rows`` rows (a request larger than that goes alone), so one call keeps Redis
    busy for milliseconds at most, and at a change of dedup window.
    """

    def __init__(self, redis: Redis, limits: AcceptLimits, max_requests: int = 256,
                 max_rows: int = 5_000, max_in_flight: int = 2,
                 buffer_keys: tuple[str, ...] = BUFFER_KEYS) -> None:
        super().__init__(redis, ACCEPT, max_batch=max_requests, max_in_flight=max_in_flight)
        self.limits = limits
        self.max_rows = max_rows
        self.buffer_keys = buffer_keys
        self.connections = PrivateConnections(redis)

    def accept(self, request: AcceptRequest, window: int) -> asyncio.Future:
        """Queue one request; the future resolves with its answer (see ``buffer.ACCEPT``)."""
        return self._queue((request, window))

    async def command(self, *parts: Any) -> Any:
        """One plain command (a read beside the accept calls) on the same private
        connections: redis-py's pool would cost more than the command itself."""
        return await self.connections.call(hiredis.pack_command(parts))

    def _parts(self, batch: Batch) -> list[Batch]:
        parts: list[Batch] = []
        rows, window = 0, None
        for entry in batch:
            (request, entry_window), _ = entry
            size = len(request.layout)
            if (not parts or len(parts[-1]) >= self.max_batch or entry_window != window
                    or rows + size > self.max_rows):
                parts.append([])
                rows, window = 0, entry_window
            parts[-1].append(entry)
            rows += size
        return parts

    async def _pipeline(self, batch: Batch) -> list[Any]:
        keys, args = accept_call([request for (request, _), _ in batch], batch[0][0][1],
                                 self.limits, self.buffer_keys)
        # packed in C: redis-py's asyncio client packs in Python, re-joining its buffer per
        # argument (ADR 0022)
        command = hiredis.pack_command((b"EVALSHA", self.sha, len(keys), *keys, *args))
        return await self.connections.call(command)


class PrivateConnections:
    """Connections to Redis kept for one caller's packed commands (at most as many as its
    calls in flight), outside redis-py's pool.

    Checking a connection out of redis-py's asyncio pool costs more than a small command: a
    lock, observability counters, and a probe read (``can_read_destructive``) on every
    checkout (ADR 0022). The probe guards against a connection given back with
    an answer half read; here a connection goes back only after its answer was read whole,
    and is dropped on any other outcome.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._idle: list[Any] = []

    async def call(self, command: bytes) -> Any:
        """Send one packed command and read its answer (a ResponseError, NOSCRIPT included,
        is raised). A broken connection is dropped, with the idle ones (Redis restarted, say:
        they are broken too), and the command sent once more on a fresh connection, as
        redis-py's own retry does: the accept script is idempotent, a second run finds its
        ids already seen."""
        for attempt in (1, 2):
            connection = (self._idle.pop() if self._idle
                          else self.redis.connection_pool.make_connection())
            try:
                await connection.send_packed_command(command)  # connects when needed
                answer = await connection.read_response()
            except (ConnectionError, TimeoutError, RedisConnectionError, RedisTimeoutError):
                await connection.disconnect()
                await self.close()
                if attempt == 2:
                    raise
                continue
            except ResponseError:
                self._idle.append(connection)  # answered in full: the connection is fine
                raise
            except BaseException:
                await connection.disconnect()  # an answer may be left half read
                raise
            self._idle.append(connection)
            return answer
        raise AssertionError("unreachable")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()

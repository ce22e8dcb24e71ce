"""Coalesce the Lua-script calls of concurrent requests (the accept script, the rate-limit
counters) into one Redis pipeline.

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

from redis.asyncio import Redis
from redis.exceptions import NoScriptError


class ScriptPipeline:
    def __init__(self, redis: Redis, script: str | bytes, max_batch: int = 256) -> None:
        self.redis = redis
        self.source = script
        self.sha = ""
        self.max_batch = max_batch
        self._pending: list[tuple[list[Any], list[Any], asyncio.Future]] = []
        self._flushing = False
        self._loaded = False
        self._sending: set[asyncio.Task] = set()  # the loop keeps only weak references

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        return await self.submit(keys, args)

    def submit(self, keys: list[Any], args: list[Any]) -> asyncio.Future:
        """Queue one call; the future resolves with its result (call from the event loop)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.append((keys, args, future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        """Send what this loop turn queued as one pipeline; pipelines of later turns do not
        wait for it (each takes its own pooled connection)."""
        self._flushing = False
        batch, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for start in range(0, len(batch), self.max_batch):
            task = loop.create_task(self._send(batch[start:start + self.max_batch]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[list[Any], list[Any], asyncio.Future]]) -> None:
        try:
            results = await self._execute(batch)
        except Exception as error:  # connection trouble: every caller gets it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: list[tuple[list[Any], list[Any], asyncio.Future]]
                       ) -> list[Any]:
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

    async def _pipeline(self, batch: list[tuple[list[Any], list[Any], asyncio.Future]]
                        ) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for keys, args, _ in batch:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        return await pipe.execute(raise_on_error=False)

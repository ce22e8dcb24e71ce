"""Rate limits per client and per visitor IP, counted in Redis with the ``limits`` library
(shared by every collector process). A hit over a limit is answered 429 with Retry-After."""

from __future__ import annotations

import asyncio
import math
import time

from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import Redis

from collector.http import ApiError
from collector.pipeline import ScriptPipeline


def limits_uri(redis_url: str) -> str:
    """The ``limits`` storage URI of a redis-py URL (``redis://``, ``rediss://``, ``unix://``)."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return f"async+{redis_url}"


class CoalescedRedisStorage(RedisStorage):
    """limits' own Redis storage, whose counter increments (its ``incr_expire`` script) from
    concurrent requests travel in one pipeline: same keys, same script, same semantics as
    the stock storage, a fraction of the system calls under load."""

    def __init__(self, uri: str, redis: Redis) -> None:
        super().__init__(uri, implementation="redispy")
        self._incr = ScriptPipeline(redis, self.bridge.SCRIPT_INCR_EXPIRE)

    def submit_incr(self, key: str, expiry: int, amount: int = 1) -> asyncio.Future:
        return self._incr.submit([self.bridge.prefixed_key(key)], [expiry, amount])

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return int(await self.submit_incr(key, expiry, amount))


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class RateLimits:
    def __init__(self, redis_url: str, per_client: str, per_ip: str, redis: Redis) -> None:
        self.storage = CoalescedRedisStorage(limits_uri(redis_url), redis)
        # for the window statistics behind Retry-After (and any other strategy use)
        self.limiter = FixedWindowRateLimiter(self.storage)
        # an empty setting switches that limit off
        self.per_client = parse(per_client) if per_client else None
        self.per_ip = parse(per_ip) if per_ip else None

    async def check(self, client_id: str, ip: str, cost: int = 1) -> None:
        """Count ``cost`` hits for the client and for the IP; raise ApiError(429) with
        Retry-After when either is over its limit.

        This is ``FixedWindowRateLimiter.hit`` (increment the item's window counter, allowed
        while it stays within the item's amount) for both limits at once: both increments
        are queued before waiting, so they share one pipeline and no task is created.
        """
        scopes = [(scope, item, key) for scope, item, key in (
            ("client", self.per_client, client_id), ("IP", self.per_ip, ip)) if item is not None]
        pending = [self.storage.submit_incr(item.key_for(scope, key), item.get_expiry(), cost)
                   for scope, item, key in scopes]
        for future in pending:  # a failure is raised by the first await; don't log it twice
            future.add_done_callback(_retrieve)
        for (scope, item, key), counted in zip(scopes, pending, strict=True):
            if int(await counted) > item.amount:
                stats = await self.limiter.get_window_stats(item, scope, key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                raise ApiError(429, f"rate limit exceeded for this {scope} ({item}); retry later",
                               headers={"Retry-After": str(retry)})

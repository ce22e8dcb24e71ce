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

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return int(await self._incr([self.bridge.prefixed_key(key)], [expiry, amount]))


class RateLimits:
    def __init__(self, redis_url: str, per_client: str, per_ip: str,
                 redis: Redis | None = None) -> None:
        uri = limits_uri(redis_url)
        self.storage = (CoalescedRedisStorage(uri, redis) if redis is not None
                        else RedisStorage(uri, implementation="redispy"))
        self.limiter = FixedWindowRateLimiter(self.storage)
        # an empty setting switches that limit off
        self.per_client = parse(per_client) if per_client else None
        self.per_ip = parse(per_ip) if per_ip else None

    async def check(self, client_id: str, ip: str, cost: int = 1) -> None:
        """Count ``cost`` hits for the client and the IP (both at once: one round trip of
        waiting); raise ApiError(429) with Retry-After when either is over its limit."""
        scopes = [(scope, item, key) for scope, item, key in (
            ("client", self.per_client, client_id), ("IP", self.per_ip, ip)) if item is not None]
        allowed = await asyncio.gather(*(self.limiter.hit(item, scope, key, cost=cost)
                                         for scope, item, key in scopes))
        for (scope, item, key), ok in zip(scopes, allowed, strict=True):
            if not ok:
                stats = await self.limiter.get_window_stats(item, scope, key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                raise ApiError(429, f"rate limit exceeded for this {scope} ({item}); retry later",
                               headers={"Retry-After": str(retry)})

"""Rate limits per client and per visitor IP, counted in Redis with the ``limits`` library
(shared by every collector process). A hit over a limit is answered 429 with Retry-After."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse
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


@dataclass(frozen=True, slots=True)
class Charge:
    """One limit a request counts against: its ``limits`` item, scope and Redis key."""

    scope: str  # "client" | "IP"
    item: RateLimitItem
    identifier: str
    key: str  # the counter's Redis key, exactly as ``limits``' Redis storage names it

    @property
    def spec(self) -> tuple[str, int, int]:
        """(counter key, expiry s, allowed amount), as the accept script takes a limit."""
        return self.key, self.item.get_expiry(), self.item.amount


class RateLimits:
    def __init__(self, redis_url: str, per_client: str, per_ip: str, redis: Redis) -> None:
        self.storage = CoalescedRedisStorage(limits_uri(redis_url), redis)
        # for the window statistics behind Retry-After (and any other strategy use)
        self.limiter = FixedWindowRateLimiter(self.storage)
        # an empty setting switches that limit off
        self.per_client = parse(per_client) if per_client else None
        self.per_ip = parse(per_ip) if per_ip else None

        # visitors repeat: their keys are built once (limits' key_for is a join per call)
        self.charges = lru_cache(maxsize=65_536)(self._charges)

    def _charges(self, client_id: str, ip: str) -> tuple[Charge, ...]:
        """The limits a request from ``client_id`` for visitor ``ip`` counts against. The
        accept script (``buffer.ACCEPT``) counts them in the same round trip as the events."""
        return tuple(
            Charge(scope, item, key, self.storage.bridge.prefixed_key(item.key_for(scope, key)))
            for scope, item, key in (("client", self.per_client, client_id),
                                     ("IP", self.per_ip, ip)) if item is not None)

    async def refusal(self, charge: Charge) -> ApiError:
        """The 429 for an exceeded limit, with Retry-After from the window's statistics."""
        stats = await self.limiter.get_window_stats(charge.item, charge.scope, charge.identifier)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        return ApiError(429, f"rate limit exceeded for this {charge.scope} ({charge.item}); "
                        "retry later", headers={"Retry-After": str(retry)})

    async def check(self, client_id: str, ip: str, cost: int = 1) -> None:
        """Count ``cost`` hits for the client and for the IP; raise ApiError(429) with
        Retry-After when either is over its limit (requests that store nothing: the accept
        script counts the others itself).

        This is ``FixedWindowRateLimiter.hit`` (increment the item's window counter, allowed
        while it stays within the item's amount) for both limits at once: both increments
        are queued before waiting, so they share one pipeline and no task is created.
        """
        charges = self.charges(client_id, ip)
        pending = [self.storage.submit_incr(c.item.key_for(c.scope, c.identifier),
                                            c.item.get_expiry(), cost) for c in charges]
        for future in pending:  # a failure is raised by the first await; don't log it twice
            future.add_done_callback(_retrieve)
        for charge, counted in zip(charges, pending, strict=True):
            if int(await counted) > charge.item.amount:
                raise await self.refusal(charge)

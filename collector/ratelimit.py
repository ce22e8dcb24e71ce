"""Rate limits per client and per visitor IP, counted in Redis with the ``limits`` library
(shared by every collector process), and limits of failed authentication per client IP and
per client id (``FailedAuthLimits``). A hit over a limit is answered 429 with Retry-After."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import Redis

from collector.http import SDK_IP_HEADERS, ApiError, Incoming, client_ip
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


# ---------------------------------------------------------------------------------------
# failed authentication
# ---------------------------------------------------------------------------------------

# One fixed-window counter: add ARGV[2] (1 to count, -1 to take a count back), start the
# window (ARGV[1] s) with the first count, and answer the count with the window's seconds
# left, so a refusal needs no second round trip for its Retry-After. Milliseconds: TTL rounds
# to the nearest second, and a Retry-After half a second short sends the client back too early.
COUNT_FAILURES = """
local current = redis.call('incrby', KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then
  redis.call('expire', KEYS[1], ARGV[1])
end
return {current, redis.call('pttl', KEYS[1])}
"""
# local memory of windows already over their limit: at most this many, the expired ones
# dropped first
BLOCKED_MEMORY = 65_536


def sender_ip(incoming: Incoming, trusted_proxies: Iterable[str]) -> str:
    """The address an unproven request came from: the peer, or what a trusted proxy forwarded.
    Never the visitor address an SDK names (``openpanel-client-ip``): a sender that has not
    proved its secret could set that to anything, a new one per attempt."""
    headers = {name: value for name, value in incoming.headers.items()
               if name not in SDK_IP_HEADERS}
    return client_ip(incoming.peer, headers, trusted_proxies, secret_client=False)


@dataclass(frozen=True, slots=True)
class FailureWindow:
    scope: str  # "IP" | "client id"
    item: RateLimitItem
    key: str


class FailedAuthLimits:
    """Failed authentication attempts per client IP and per client id, counted in Redis so
    every collector process shares them (``accounts.auth.AttemptGuard``).

    Only requests that are not answered from the authentication caches as good pass here: a
    known client with a verified secret (or an allowed Origin) costs no round trip. Before
    any database lookup or argon2 run for an unproven request the attempt is counted in
    advance (taken back when it proves right); a failure found without such work (a
    remembered wrong secret, an unknown id, a wrong Origin) is counted when found. Past a
    limit the answer is 429 with Retry-After until the window ends; a process that has seen
    a window over its limit answers the rest of that window without asking Redis. Only
    known client ids are counted per client id (random ids would each make a key).
    """

    def __init__(self, redis: Redis, per_ip: str, per_client: str,
                 trusted_proxies: Iterable[str], delay_ms: int = 0) -> None:
        # an empty setting switches that limit off
        self.per_ip = parse(per_ip) if per_ip else None
        self.per_client = parse(per_client) if per_client else None
        self.delay_s = delay_ms / 1000
        self.trusted_proxies = tuple(trusted_proxies)
        self._count = ScriptPipeline(redis, COUNT_FAILURES)
        self._blocked: dict[str, float] = {}  # counter key -> monotonic end of its window

    def guard(self, incoming: Incoming) -> FailedAuthGuard:
        return FailedAuthGuard(self, incoming)

    @staticmethod
    def key(scope: str, item: RateLimitItem, identifier: str) -> str:
        """The Redis key of one window's counter."""
        return "trackhouse:" + item.key_for("failed-auth", scope, identifier)

    def windows(self, ip: str, client_id: str | None) -> list[FailureWindow]:
        found = []
        if self.per_ip is not None:
            found.append(FailureWindow("IP", self.per_ip, self.key("IP", self.per_ip, ip)))
        if self.per_client is not None and client_id is not None:
            found.append(FailureWindow("client id", self.per_client,
                                       self.key("client", self.per_client, client_id)))
        return found

    @staticmethod
    def refusal(window: FailureWindow, seconds_left: float) -> ApiError:
        retry = max(1, math.ceil(seconds_left))
        return ApiError(429, f"too many failed authentication attempts for this "
                        f"{window.scope} ({window.item}); retry after {retry} s",
                        headers={"Retry-After": str(retry)})

    def _remember_blocked(self, key: str, until: float) -> None:
        if len(self._blocked) >= BLOCKED_MEMORY:
            now = time.monotonic()
            self._blocked = {k: t for k, t in self._blocked.items() if t > now}
            if len(self._blocked) >= BLOCKED_MEMORY:
                self._blocked.clear()
        self._blocked[key] = until

    async def count(self, ip: str, client_id: str | None, amount: int = 1) -> bool:
        """Add ``amount`` to the windows of ``ip`` and of ``client_id``; raise ApiError(429)
        when one is over its limit (for a count; -1 takes a count back and never refuses).
        True when this count is the first in each of its windows (nothing failed lately)."""
        windows = self.windows(ip, client_id)
        if amount > 0:
            now = time.monotonic()
            for window in windows:
                until = self._blocked.get(window.key)
                if until is not None and until > now:
                    await self._hold()
                    raise self.refusal(window, until - now)
        pending = [self._count.submit([w.key], [w.item.get_expiry(), amount]) for w in windows]
        for future in pending:  # a failure is raised by the first await; don't log it twice
            future.add_done_callback(_retrieve)
        first = True
        for window, counted in zip(windows, pending, strict=True):
            current, ms_left = (int(value) for value in await counted)
            first = first and current <= amount
            if amount > 0 and current > window.item.amount:
                seconds_left = ms_left / 1000 if ms_left > 0 else window.item.get_expiry()
                self._remember_blocked(window.key, time.monotonic() + seconds_left)
                await self._hold()
                raise self.refusal(window, seconds_left)
        return first

    async def _hold(self) -> None:
        """Answer a refusal late: a sender that waits for its answers (as a flood's
        connections do) then sends a few a second, not thousands, and the collector's CPU
        stays with the clients that authenticate. A sleeping request costs no CPU."""
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)


class FailedAuthGuard:
    """``FailedAuthLimits`` for one request (its sender's IP found only when needed)."""

    __slots__ = ("_ip", "incoming", "limits")

    def __init__(self, limits: FailedAuthLimits, incoming: Incoming) -> None:
        self.limits = limits
        self.incoming = incoming
        self._ip: str | None = None

    @property
    def ip(self) -> str:
        if self._ip is None:
            self._ip = sender_ip(self.incoming, self.limits.trusted_proxies)
        return self._ip

    async def admit(self, client_id: str | None) -> bool:
        return await self.limits.count(self.ip, client_id)

    async def refund(self, client_id: str | None) -> None:
        await self.limits.count(self.ip, client_id, -1)

    async def failed(self, client_id: str | None) -> None:
        await self.limits.count(self.ip, client_id)

"""Authentication of API clients on the collector's hot path (protocol.md, "Authentication").

- With a secret: the client's argon2 hash must match. argon2 is slow on purpose (~0.1 s), so
  verdicts are cached, keyed by a keyed BLAKE2 digest of (client id, stored hash, secret);
  the plaintext is never kept, and rotating the stored hash invalidates the entry. Right
  secrets and wrong ones are cached apart (a flood of wrong ones cannot evict a right one),
  and a right one stays cached while it is used (``auth_secret_cache_ttl_s`` after its last
  use): a verdict cannot change while the stored hash does not, and revocation is read from
  the client record, so a known client never waits for argon2 again.
- Without a secret (browsers): the request's ``Origin`` must match the client's allowed
  origins (or, when the client has none, the project's): exact, ``*.example.com`` for
  subdomains, or ``*``. Only ``write`` clients may authenticate this way: an Origin header
  is easy to forge outside a browser, so reading and managing always need the secret.
- Unknown or revoked clients get 401; a client whose type does not allow the action gets 403
  (``write`` ingests, ``read`` reads, ``root`` does everything).

Client records are cached for ``auth_client_cache_ttl_s`` (10 s) so the collector does not
query the database per event; a revoke is honoured everywhere within that time (at once in
the process that revoked). A record in use is reloaded in the background shortly before it
expires. Every cache is bounded and safe to use from many threads.

The async entry point (the collector) runs the slow work in lanes of its own (``Lanes``):
reloading known clients, looking up ids not seen yet, and argon2 for secrets not verified
yet, each with few threads and the last two with a bounded queue (past it: 429 at once), so
a flood of unknown ids or wrong secrets never takes the places of known clients. An
``AttemptGuard`` (the collector's failed-attempt limits in Redis) is asked before any such
work for an unproven request and told of each failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import select

from accounts.db import session_scope
from accounts.errors import InvalidInput
from accounts.hashing import verify_secret
from accounts.models import Client, Project
from accounts.validation import parse_origin, parse_origin_pattern
from trackhouse.settings import Settings, get_settings

log = logging.getLogger(__name__)

# What each client type may do; ``need`` names one of these actions.
PERMISSIONS: dict[str, frozenset[str]] = {
    "write": frozenset({"write"}),
    "read": frozenset({"read"}),
    "root": frozenset({"write", "read", "root"}),
}


@dataclass(frozen=True)
class AuthenticatedClient:
    client_id: str
    project_id: str
    type: str
    # True when this request proved the client's secret: a trusted server-side sender
    # (may import history, set ``__ip``, is never treated as a bot).
    has_secret: bool
    allowed_origins: tuple[str, ...]
    project_timezone: str


class AuthError(Exception):
    """Authentication failed: ``status_code`` 401 (bad or missing credentials), 403 (the
    client's type does not allow the action) or 429 (too many unproven attempts in progress:
    retry after ``retry_after`` seconds); ``message`` is safe to return to the caller."""

    def __init__(self, status_code: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.retry_after = retry_after


@lru_cache(maxsize=4_096)
def _normalized_client_id(client_id: str) -> str:
    """The canonical text of a client id (a UUID); cached, every request carries one."""
    try:
        return str(uuid.UUID(client_id.strip()))
    except ValueError:
        raise AuthError(401, "unknown client id") from None


def origin_allowed(origin: str | None, patterns: Sequence[str]) -> bool:
    """True when ``origin`` (a request's Origin header) matches one of ``patterns``."""
    if not origin or not patterns:
        return False
    parsed = parse_origin(origin)
    for text in patterns:
        try:
            pattern = parse_origin_pattern(text)
        except InvalidInput:
            continue  # stored patterns are validated; a bad one simply never matches
        if pattern.any_origin:
            return True
        if parsed is not None and pattern.matches(*parsed):
            return True
    return False


# ---------------------------------------------------------------------------------------
# a small bounded TTL cache
# ---------------------------------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING: Any = object()


class TTLCache(Generic[K, V]):
    """Thread-safe map whose entries expire ``ttl_s`` after being set (with ``sliding``, after
    being last read); least recently set entries are evicted beyond ``max_entries``.
    ``ttl_s == 0`` disables caching. An expired entry answers no ``get`` but stays until
    evicted or replaced: ``entry`` still shows it (a hint that the key existed).

    ``get_or_compute`` runs ``compute`` once per key at a time, so a burst of requests from a
    new client costs one database lookup or one argon2 verify, not one per request.
    """

    def __init__(self, ttl_s: float, max_entries: int, *, sliding: bool = False) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.sliding = sliding
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight = _OncePerKey()

    def entry(self, key: K) -> tuple[float, V] | None:
        """(monotonic expiry, value) of ``key``, expired or not; None when absent."""
        with self._lock:
            return self._entries.get(key)

    def get(self, key: K) -> V:
        """The value, or ``_MISSING`` when absent or expired."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                return _MISSING
            if self.sliding:
                self._entries[key] = (now + self.ttl_s, entry[1])
            return entry[1]

    def set(self, key: K, value: V) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        value = self.get(key)
        if value is not _MISSING:
            return value
        with self._inflight.hold(key):
            value = self.get(key)
            if value is _MISSING:
                value = compute()
                self.set(key, value)
            return value


class _OncePerKey:
    """``with once.hold(key)``: one thread at a time per key (the others wait, then find the
    first one's result in a cache)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}

    class _Held:
        def __init__(self, owner: _OncePerKey, key: Hashable) -> None:
            self.owner, self.key = owner, key

        def __enter__(self) -> None:
            with self.owner._lock:
                self.lock = self.owner._locks.setdefault(self.key, threading.Lock())
            self.lock.acquire()

        def __exit__(self, *_: object) -> None:
            self.lock.release()
            with self.owner._lock:
                if self.owner._locks.get(self.key) is self.lock:
                    del self.owner._locks[self.key]

    def hold(self, key: Hashable) -> _OncePerKey._Held:
        return self._Held(self, key)


# ---------------------------------------------------------------------------------------
# lanes: the slow work of the async entry point, kept apart by kind
# ---------------------------------------------------------------------------------------


class Lane:
    """A few threads for one kind of slow work. With ``waiting`` set, at most ``threads +
    waiting`` calls may be in progress; one more is refused at once (429) instead of queueing
    behind them: a flood gets answers, not a growing queue that known clients wait in."""

    def __init__(self, name: str, threads: int, waiting: int | None, nice: int = 0) -> None:
        self.name = name
        self._executor = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix=f"auth-{name}", initializer=_lower_priority,
            initargs=(nice,))
        self._places = (threading.BoundedSemaphore(threads + waiting)
                        if waiting is not None else None)

    def submit(self, fn: Callable[..., V], *args: Any) -> concurrent.futures.Future[V]:
        """Start ``fn(*args)``; raise ``AuthError(429)`` when the lane is full."""
        places = self._places
        if places is not None and not places.acquire(blocking=False):
            raise AuthError(429, "too many unverified credentials are being checked right now; "
                                 "retry later", retry_after=1)
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            if places is not None:
                places.release()
            raise
        if places is not None:
            # released when the work ends, even if the request waiting for it has gone
            future.add_done_callback(lambda _: places.release())
        return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)  # queued work still ends: its callers await it


# The nice value of the threads working for unproven requests: weight 110 against the event
# loops' 1024 while both want the CPU.
UNPROVEN_NICE = 10

def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux schedules threads apart): work for unproven
    requests then yields the CPU to the event loops answering known clients, and takes
    the rest of it."""
    if nice > 0:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class Lanes:
    """``known``: reloading records of clients already seen (never refused); ``lookup``:
    records of ids not seen yet (a database query each); ``verify``: argon2 of secrets not
    verified yet (each run takes a core and 64 MiB for ~0.1 s); each of the last two with a
    ``suspect`` twin for senders or clients with recent failures."""

    def __init__(self) -> None:
        # half the cores: a collector runs a process per core, and the event loops need the
        # rest to answer known clients
        verifiers = max(1, (os.cpu_count() or 2) // 2)
        self.known = Lane("known", 1, None)
        # work for a sender (and client) with no recent failures, such as a new server-side
        # sender, runs at ordinary priority: a flood gets that once a window; the rest of it
        # in the ``suspect`` lanes, niced
        self.lookup = Lane("lookup", 1, 4)
        self.lookup_suspect = Lane("lookup-suspect", 1, 4, nice=UNPROVEN_NICE)
        self.verify = Lane("verify", verifiers, 2 * verifiers)
        self.verify_suspect = Lane("verify-suspect", verifiers, 2 * verifiers,
                                   nice=UNPROVEN_NICE)

    def shutdown(self) -> None:
        for lane in (self.known, self.lookup, self.lookup_suspect, self.verify,
                     self.verify_suspect):
            lane.shutdown()


class AttemptGuard(Protocol):
    """Limits unproven attempts (the collector's: counted in Redis per client IP and client
    id). ``client_id`` is a known client's id, or None (an unknown or unparsable id). Each
    method raises to refuse the request (429); ``admit``/``failed`` return normally to let it
    on."""

    async def admit(self, client_id: str | None) -> bool:
        """Before slow work for a request not proven yet: count it as a failure in advance.
        True when nothing failed lately from its sender or for its client (its work may
        then run at ordinary priority)."""

    async def refund(self, client_id: str | None) -> None:
        """The admitted request proved itself: take back its count."""

    async def failed(self, client_id: str | None) -> None:
        """A failure found without slow work (cached verdict, unknown id, wrong origin)."""


# ---------------------------------------------------------------------------------------
# the authenticator
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientRecord:
    """What authentication needs to know about a client, as cached."""

    client_id: str
    project_id: str
    type: str
    secret_hash: str | None
    allowed_origins: tuple[str, ...]
    project_timezone: str
    revoked: bool


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# A record in use is reloaded in the background once less than this share of its life is left.
REFRESH_AHEAD = 0.25


class ClientAuthenticator:
    """Authenticates clients against one metadata database, with its own caches."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client_ttl_s: float | None = None,
        secret_ttl_s: float | None = None,
        max_entries: int | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        size = max_entries or self.settings.auth_cache_max_entries
        client_ttl = self.settings.auth_client_cache_ttl_s if client_ttl_s is None else client_ttl_s
        secret_ttl = self.settings.auth_secret_cache_ttl_s if secret_ttl_s is None else secret_ttl_s
        # known clients and ids known not to exist apart: random ids cannot evict real ones
        self.clients: TTLCache[str, ClientRecord] = TTLCache(client_ttl, size)
        self.unknown_ids: TTLCache[str, bool] = TTLCache(client_ttl, size)
        self.verdicts: TTLCache[bytes, bool] = TTLCache(secret_ttl, size, sliding=True)
        self.wrong_secrets: TTLCache[bytes, bool] = TTLCache(secret_ttl, size)
        self._refresh_margin = client_ttl * REFRESH_AHEAD
        self._loading = _OncePerKey()
        self._verifying = _OncePerKey()
        # Keyed digests: the cache holds nothing that could be checked against a guess
        # outside this process.
        self._digest_key = secrets.token_bytes(32)
        # the async entry point's slow work in flight, so a burst shares one run
        self._pending: dict[Hashable, concurrent.futures.Future[Any]] = {}
        self._pending_lock = threading.Lock()
        self._lanes: Lanes | None = None

    @property
    def lanes(self) -> Lanes:
        # built on first use: threads must not exist before a server forks its workers
        with self._pending_lock:
            if self._lanes is None:
                self._lanes = Lanes()
            return self._lanes

    def close(self) -> None:
        if self._lanes is not None:
            self._lanes.shutdown()

    # --- lookups -----------------------------------------------------------------------
    def _load(self, client_id: str) -> ClientRecord | None:
        query = (
            select(Client, Project.allowed_origins, Project.timezone)
            .join(Project, Project.id == Client.project_id)
            .where(Client.id == client_id)
        )
        with session_scope(self.settings) as session:
            row = session.execute(query).first()
        if row is None:
            return None
        client, project_origins, timezone = row
        return ClientRecord(
            client_id=client.id,
            project_id=client.project_id,
            type=client.type,
            secret_hash=client.secret_hash,
            allowed_origins=tuple(client.allowed_origins or project_origins or ()),
            project_timezone=timezone,
            revoked=client.revoked_at is not None,
        )

    def cached_record(self, client_id: str) -> ClientRecord | None:
        """The cached record; None when the id is cached as unknown; ``_MISSING`` otherwise."""
        record = self.clients.get(client_id)
        if record is not _MISSING:
            return record
        return None if self.unknown_ids.get(client_id) is not _MISSING else _MISSING

    def reload(self, client_id: str, *, force: bool = False) -> ClientRecord | None:
        """Read the record from the database (once per key at a time) and cache it."""
        with self._loading.hold(client_id):
            if not force:
                cached = self.cached_record(client_id)
                if cached is not _MISSING:
                    return cached
            record = self._load(client_id)
            if record is None:
                self.clients.pop(client_id)
                self.unknown_ids.set(client_id, True)
            else:
                self.unknown_ids.pop(client_id)
                self.clients.set(client_id, record)
            return record

    def record(self, client_id: str) -> ClientRecord | None:
        """The client's record (cached, unknown ids included so random ids cost one query)."""
        cached = self.cached_record(client_id)
        return self.reload(client_id) if cached is _MISSING else cached

    def _verdict_key(self, record: ClientRecord, secret: str) -> bytes:
        digest = hashlib.blake2b(key=self._digest_key, digest_size=32)
        for part in (record.client_id, record.secret_hash or "", secret):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        return digest.digest()

    def cached_verdict(self, key: bytes) -> bool | None:
        """True (a right secret), False (a wrong one) or None (not verified yet)."""
        if self.verdicts.get(key) is not _MISSING:
            return True
        return False if self.wrong_secrets.get(key) is not _MISSING else None

    def _verify(self, key: bytes, stored_hash: str, secret: str, *, own_lane: bool) -> bool:
        """argon2, once per key at a time, and cache the verdict. ``own_lane``: called in a
        ``Lanes.verify`` thread, which bounds the runs (no shared semaphore to wait on)."""
        cached = self.cached_verdict(key)
        if cached is not None:
            return cached
        with self._verifying.hold(key):
            cached = self.cached_verdict(key)
            if cached is not None:
                return cached
            if own_lane:
                right = verify_secret(stored_hash, secret, slots=None)
            else:
                right = verify_secret(stored_hash, secret)
            (self.verdicts if right else self.wrong_secrets).set(key, True)
            return right

    def forget(self, client_id: str) -> None:
        self.clients.pop(client_id)
        self.unknown_ids.pop(client_id)

    # --- the checks --------------------------------------------------------------------
    @staticmethod
    def _client_id(client_id: str | None) -> str:
        if not client_id or not client_id.strip():
            raise AuthError(401, "missing client id: send the openpanel-client-id header "
                                 "(or clientId in the body)")
        return _normalized_client_id(client_id)

    @staticmethod
    def _check_record(record: ClientRecord | None) -> ClientRecord:
        if record is None:
            raise AuthError(401, "unknown client id")
        if record.revoked:
            raise AuthError(401, "this client has been revoked")
        return record

    @staticmethod
    def _check_secret_present(record: ClientRecord) -> str:
        if record.secret_hash is None:
            raise AuthError(401, "this client has no secret; browsers authenticate by Origin "
                                 "(send no client secret)")
        return record.secret_hash

    @staticmethod
    def _check_origin(record: ClientRecord, origin: str | None) -> None:
        if record.type != "write":
            # Any non-browser sender can forge an Origin header; that is an accepted risk for
            # public event ingestion, never for reading data or managing projects.
            raise AuthError(401, f"a {record.type} client must send its client secret")
        if not origin:
            raise AuthError(401, "missing Origin header: browser clients are checked against "
                                 "their allowed origins; server-side senders must send the "
                                 "client secret")
        if not origin_allowed(origin, record.allowed_origins):
            raise AuthError(401, f"origin {_clip(origin)!r} is not allowed for this client")

    @staticmethod
    def _check_permission(record: ClientRecord, need: str) -> None:
        if need not in PERMISSIONS["root"]:
            raise ValueError(f"need must be one of write, read, root; got {need!r}")
        if need not in PERMISSIONS.get(record.type, frozenset()):
            action = {"write": "send events", "read": "read data", "root": "manage projects"}
            raise AuthError(403, f"a {record.type} client may not {action[need]}")

    @staticmethod
    def _result(record: ClientRecord, has_secret: bool) -> AuthenticatedClient:
        return AuthenticatedClient(
            client_id=record.client_id,
            project_id=record.project_id,
            type=record.type,
            has_secret=has_secret,
            allowed_origins=record.allowed_origins,
            project_timezone=record.project_timezone,
        )

    def authenticate(self, client_id: str | None, secret: str | None, origin: str | None, *,
                     need: str = "write") -> AuthenticatedClient:
        """Check a request's credentials; raise ``AuthError`` (401/403) when they fail.

        May query the database and run argon2 on a cache miss: call it from a worker thread
        in async code (or use ``authenticate_async``, which also keeps floods apart).
        """
        record = self._check_record(self.record(self._client_id(client_id)))
        right = None
        if secret:
            stored_hash = self._check_secret_present(record)
            key = self._verdict_key(record, secret)
            right = self._verify(key, stored_hash, secret, own_lane=False)
        return self._conclude(record, secret, right, origin, need)

    def _conclude(self, record: ClientRecord, secret: str | None, right: bool | None,
                  origin: str | None, need: str) -> AuthenticatedClient:
        """The checks once the record and, with a secret, its verdict (``right``) are known."""
        if secret:
            if not right:
                raise AuthError(401, "wrong client secret")
        else:
            self._check_origin(record, origin)
        self._check_permission(record, need)
        return self._result(record, has_secret=bool(secret))

    def authenticate_cached(self, client_id: str | None, secret: str | None,
                            origin: str | None, *, need: str = "write"
                            ) -> AuthenticatedClient | None:
        """Like ``authenticate`` but never blocks: None when the answer needs the database or
        argon2 (a cache miss). Safe to call on an event loop. A record in use is reloaded in
        the background (the ``known`` lane) shortly before it expires."""
        normalized = self._client_id(client_id)
        entry = self.clients.entry(normalized)
        now = time.monotonic()
        if entry is None or entry[0] <= now:
            if self.unknown_ids.get(normalized) is not _MISSING:
                raise AuthError(401, "unknown client id")
            return None
        if entry[0] - now < self._refresh_margin:
            self._start(("record", normalized), self.lanes.known,
                        lambda: self.reload(normalized, force=True))
        record = self._check_record(entry[1])
        right = None
        if secret:
            self._check_secret_present(record)
            right = self.cached_verdict(self._verdict_key(record, secret))
            if right is None:
                return None
        return self._conclude(record, secret, right, origin, need)

    # --- the async entry point ---------------------------------------------------------
    def _start(self, key: Hashable, lane: Lane, work: Callable[[], V]
               ) -> tuple[concurrent.futures.Future[V], bool]:
        """The work in flight for ``key``, started in ``lane`` unless it already runs;
        (future, started here)."""
        with self._pending_lock:
            running = self._pending.get(key)
            if running is not None:
                return running, False
            future = lane.submit(work)  # may raise AuthError(429): nothing started
            self._pending[key] = future

        def done(_: concurrent.futures.Future[V]) -> None:
            with self._pending_lock:
                if self._pending.get(key) is future:
                    del self._pending[key]

        future.add_done_callback(done)
        return future, True

    def _joinable(self, key: Hashable) -> concurrent.futures.Future[Any] | None:
        with self._pending_lock:
            return self._pending.get(key)

    async def authenticate_async(self, client_id: str | None, secret: str | None,
                                 origin: str | None, *, need: str = "write",
                                 guard: AttemptGuard | None = None) -> AuthenticatedClient:
        """``authenticate`` for async code: answers from the caches on the loop; the slow
        work goes to its lane. With a ``guard``, an unproven request is admitted by it before
        any slow work and every 401 is counted by it (it may turn either into a 429)."""
        counted: list[str | None] = []  # the guard scope this request was admitted under
        known: str | None = None  # a known client's id, once the record says so
        try:
            result = self.authenticate_cached(client_id, secret, origin, need=need)
            if result is not None:
                return result
            normalized = self._client_id(client_id)
            record = self.cached_record(normalized)
            if record is _MISSING:
                record = await self._record_async(normalized, guard, counted)
            record = self._check_record(record)
            known = record.client_id
            right = None
            if secret:
                stored_hash = self._check_secret_present(record)
                key = self._verdict_key(record, secret)
                right = self.cached_verdict(key)
                if right is None:
                    right = await self._verify_async(key, stored_hash, secret, known, guard,
                                                     counted)
            return self._conclude(record, secret, right, origin, need)
        except AuthError as error:
            if error.status_code == 401 and guard is not None and not counted:
                await guard.failed(known or self._known_id(client_id))
            raise

    def _known_id(self, client_id: str | None) -> str | None:
        """The normalized id when it names a cached client (a failure path's question)."""
        try:
            normalized = self._client_id(client_id)
        except AuthError:
            return None
        return normalized if self.clients.entry(normalized) is not None else None

    async def _record_async(self, client_id: str, guard: AttemptGuard | None,
                            counted: list[str | None]) -> ClientRecord | None:
        key = ("record", client_id)
        running = self._joinable(key)
        if running is None and self.clients.entry(client_id) is not None:
            # a client seen before whose entry expired: its own lane, counted by no one
            running, _ = self._start(key, self.lanes.known,
                                     lambda: self.reload(client_id, force=True))
        if running is not None:
            return await asyncio.wrap_future(running)
        quiet = True
        if guard is not None:
            quiet = await guard.admit(None)
            counted.append(None)
        lane = self.lanes.lookup if quiet else self.lanes.lookup_suspect
        running, _ = self._start(key, lane, lambda: self.reload(client_id))
        record: ClientRecord | None = await asyncio.wrap_future(running)
        if record is not None and counted:
            counted.clear()
            await guard.refund(None)  # type: ignore[union-attr]  # (counted implies a guard)
        return record

    async def _verify_async(self, key: bytes, stored_hash: str, secret: str, client_id: str,
                            guard: AttemptGuard | None, counted: list[str | None]) -> bool:
        running = self._joinable(("verdict", key))
        if running is None:
            quiet = True
            if guard is not None:
                quiet = await guard.admit(client_id)
                counted.append(client_id)
            lane = self.lanes.verify if quiet else self.lanes.verify_suspect
            # a full lane refuses (429); the attempt stays counted, so a flood that fills the
            # lane reaches its limit, not an argon2 run per place freed
            running, _ = self._start(("verdict", key), lane, lambda: self._verify(
                key, stored_hash, secret, own_lane=True))
        right: bool = await asyncio.wrap_future(running)
        if right and counted:
            counted.clear()
            await guard.refund(client_id)  # type: ignore[union-attr]
        return right


_default: ClientAuthenticator | None = None
_default_lock = threading.Lock()


def authenticator() -> ClientAuthenticator:
    """The process-wide authenticator, built from the settings on first use (and rebuilt when
    the settings object is replaced, e.g. after ``get_settings.cache_clear()``)."""
    global _default
    settings = get_settings()
    with _default_lock:
        if _default is None or _default.settings is not settings:
            if _default is not None:
                _default.close()
            _default = ClientAuthenticator(settings)
        return _default


def reset_auth_cache() -> None:
    """Drop the process-wide authenticator and its caches (settings changed, tests)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = None


def forget_client(client_id: str) -> None:
    """Drop one client's cached record in this process (after a revoke or an edit)."""
    with _default_lock:
        current = _default
    if current is not None:
        current.forget(client_id)


def authenticate_client(client_id: str | None, secret: str | None, origin: str | None, *,
                        need: str = "write") -> AuthenticatedClient:
    """Authenticate a request with the process-wide authenticator (see the module doc)."""
    return authenticator().authenticate(client_id, secret, origin, need=need)


async def authenticate_client_async(client_id: str | None, secret: str | None,
                                    origin: str | None, *, need: str = "write",
                                    guard: AttemptGuard | None = None) -> AuthenticatedClient:
    """For async handlers: answers from the caches on the loop; slow work in its lane."""
    auth = authenticator()
    try:  # the hot path without another coroutine; failures are counted by the one below
        result = auth.authenticate_cached(client_id, secret, origin, need=need)
    except AuthError:
        result = None
    if result is not None:
        return result
    return await auth.authenticate_async(client_id, secret, origin, need=need, guard=guard)

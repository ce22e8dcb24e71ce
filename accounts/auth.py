"""Authentication of API clients on the collector's hot path (protocol.md, "Authentication").

- With a secret: the client's argon2 hash must match. argon2 is slow on purpose (~0.1 s), so
  the verdict is cached briefly, keyed by a keyed BLAKE2 digest of (client id, stored hash,
  secret); the plaintext is never kept, and rotating the stored hash invalidates the entry.
- Without a secret (browsers): the request's ``Origin`` must match the client's allowed
  origins (or, when the client has none, the project's): exact, ``*.example.com`` for
  subdomains, or ``*``. Only ``write`` clients may authenticate this way: an Origin header
  is easy to forge outside a browser, so reading and managing always need the secret.
- Unknown or revoked clients get 401; a client whose type does not allow the action gets 403
  (``write`` ingests, ``read`` reads, ``root`` does everything).

Client records are cached for ``auth_client_cache_ttl_s`` (10 s) so the collector does not
query the database per event; a revoke is honoured everywhere within that time (at once in
the process that revoked). Both caches are bounded and safe to use from many threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

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
    """Authentication failed: ``status_code`` 401 (bad or missing credentials) or 403 (the
    client's type does not allow the action); ``message`` is safe to return to the caller."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


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
_MISSING = object()


class TTLCache(Generic[K, V]):
    """Thread-safe map whose entries expire ``ttl_s`` after being set; least recently set
    entries are evicted beyond ``max_entries``. ``ttl_s == 0`` disables caching.

    ``get_or_compute`` runs ``compute`` once per key at a time, so a burst of requests from a
    new client costs one database lookup or one argon2 verify, not one per request.
    """

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[K, threading.Lock] = {}

    def get(self, key: K) -> V | object:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return _MISSING
            expires, value = entry
            if expires <= time.monotonic():
                del self._entries[key]
                return _MISSING
            return value

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
            return value  # type: ignore[return-value]
        with self._lock:
            key_lock = self._inflight.setdefault(key, threading.Lock())
        try:
            with key_lock:
                value = self.get(key)
                if value is _MISSING:
                    value = compute()
                    self.set(key, value)
                return value  # type: ignore[return-value]
        finally:
            with self._lock:
                if self._inflight.get(key) is key_lock:
                    del self._inflight[key]


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
        self.clients: TTLCache[str, ClientRecord | None] = TTLCache(
            self.settings.auth_client_cache_ttl_s if client_ttl_s is None else client_ttl_s, size
        )
        self.verdicts: TTLCache[bytes, bool] = TTLCache(
            self.settings.auth_secret_cache_ttl_s if secret_ttl_s is None else secret_ttl_s, size
        )
        # Keyed digests: the cache holds nothing that could be checked against a guess
        # outside this process.
        self._digest_key = secrets.token_bytes(32)

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

    def record(self, client_id: str) -> ClientRecord | None:
        """The client's record (cached, unknown ids included so random ids cost one query)."""
        return self.clients.get_or_compute(client_id, lambda: self._load(client_id))

    def _verdict_key(self, record: ClientRecord, secret: str) -> bytes:
        digest = hashlib.blake2b(key=self._digest_key, digest_size=32)
        for part in (record.client_id, record.secret_hash or "", secret):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        return digest.digest()

    def forget(self, client_id: str) -> None:
        self.clients.pop(client_id)

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
        in async code (or use ``authenticate_client_async``).
        """
        record = self._check_record(self.record(self._client_id(client_id)))
        if secret:
            stored_hash = self._check_secret_present(record)
            key = self._verdict_key(record, secret)
            if not self.verdicts.get_or_compute(key, lambda: verify_secret(stored_hash, secret)):
                raise AuthError(401, "wrong client secret")
        else:
            self._check_origin(record, origin)
        self._check_permission(record, need)
        return self._result(record, has_secret=bool(secret))

    def authenticate_cached(self, client_id: str | None, secret: str | None,
                            origin: str | None, *, need: str = "write"
                            ) -> AuthenticatedClient | None:
        """Like ``authenticate`` but never blocks: None when the answer needs the database or
        argon2 (a cache miss). Safe to call on an event loop."""
        normalized = self._client_id(client_id)
        cached = self.clients.get(normalized)
        if cached is _MISSING:
            return None
        record = self._check_record(cached)  # type: ignore[arg-type]
        if secret:
            self._check_secret_present(record)
            verdict = self.verdicts.get(self._verdict_key(record, secret))
            if verdict is _MISSING:
                return None
            if not verdict:
                raise AuthError(401, "wrong client secret")
        else:
            self._check_origin(record, origin)
        self._check_permission(record, need)
        return self._result(record, has_secret=bool(secret))


_default: ClientAuthenticator | None = None
_default_lock = threading.Lock()


def authenticator() -> ClientAuthenticator:
    """The process-wide authenticator, built from the settings on first use (and rebuilt when
    the settings object is replaced, e.g. after ``get_settings.cache_clear()``)."""
    global _default
    settings = get_settings()
    with _default_lock:
        if _default is None or _default.settings is not settings:
            _default = ClientAuthenticator(settings)
        return _default


def reset_auth_cache() -> None:
    """Drop the process-wide authenticator and its caches (settings changed, tests)."""
    global _default
    with _default_lock:
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
                                    origin: str | None, *, need: str = "write"
                                    ) -> AuthenticatedClient:
    """For async handlers: answers from the caches on the loop; a miss goes to a thread."""
    auth = authenticator()
    result = auth.authenticate_cached(client_id, secret, origin, need=need)
    if result is not None:
        return result
    return await asyncio.to_thread(auth.authenticate, client_id, secret, origin, need=need)

"""Identifiers derived by the collector: event ids, cookieless device ids (live session ids:
``trackhouse.session_ids``).

All ids are deterministic (uuid5 or a keyed hash) so that a replay of the same input yields the
same ids; see protocol.md, "Derived identifiers" and "Event ids".
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import orjson
from redis.asyncio import Redis

from trackhouse.buffer_layout import Keys
from trackhouse.session_ids import session_id, uuid_from_sha1

# Namespace of every uuid5 Trackhouse derives (a fixed random UUID: never change it).
TRACKHOUSE_NAMESPACE = uuid.UUID("6f1f3c52-8d0b-4d7e-9a57-3c2b1f0e8a41")
SALT_TTL_S = 3 * 86_400

__all__ = ["SALT_TTL_S", "TRACKHOUSE_NAMESPACE", "DailySalts", "derived_uuid", "device_id",
           "event_id_from_client", "event_id_from_content", "request_fingerprint", "session_id"]


_NAMESPACE_BYTES = TRACKHOUSE_NAMESPACE.bytes


def derived_uuid(*parts: Any) -> str:
    """A uuid5 of the parts (joined unambiguously).

    Exactly ``str(uuid.uuid5(TRACKHOUSE_NAMESPACE, orjson.dumps(parts).decode()))``, laid out
    from the SHA-1 bytes directly: the ``uuid`` module's objects cost about a third of a
    batch event's preparation.
    """
    return uuid_from_sha1(hashlib.sha1(_NAMESPACE_BYTES + orjson.dumps(parts)).hexdigest())


def event_id_from_client(project_id: str, client_event_id: str) -> str:
    return derived_uuid("event", project_id, client_event_id)


def event_id_from_content(
    project_id: str, device_id: str, name: str, client_timestamp: str, path: str,
    properties: dict[str, Any],
) -> str:
    canonical = orjson.dumps(properties, option=orjson.OPT_SORT_KEYS).decode()
    return derived_uuid("content", project_id, device_id, name, client_timestamp, path, canonical)


def request_fingerprint(project_id: str, item: Any, ip: str, user_agent: str) -> str:
    """Same message body from the same IP and user agent -> same fingerprint."""
    body = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(body, digest_size=16)
    for part in (project_id, ip, user_agent):
        digest.update(b"\x00" + part.encode())
    return digest.hexdigest()


@lru_cache(maxsize=65_536)
def device_id(salt: str, user_agent: str, ip: str, project_id: str) -> str:
    """Cookieless device id: keyed hash of (user agent, IP, project) under the day's salt
    (cached: a visitor's events repeat it; a live event asks for today's and yesterday's)."""
    digest = hashlib.blake2b(key=salt.encode()[:64], digest_size=16)
    digest.update(f"{user_agent}\x00{ip}\x00{project_id}".encode())
    return digest.hexdigest()


class DailySalts:
    """The salt of each UTC day lives in Redis (shared by every collector process) and is
    cached here; the previous day's salt stays readable so a visit crossing midnight keeps
    its device id."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._cache: dict[date, str] = {}
        self._pair: tuple[date, tuple[str, str]] | None = None  # the last day asked, its pair

    async def salts(self, today: date) -> tuple[str, str]:
        """Salts of the UTC day ``today`` and of the day before."""
        pair = self._pair
        if pair is not None and pair[0] == today:
            return pair[1]
        salts = await self._salt(today), await self._salt(today - timedelta(days=1))
        self._pair = today, salts
        return salts

    async def _salt(self, day: date) -> str:
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        key = Keys.salt(day)
        await self._redis.set(key, secrets.token_hex(32), nx=True, ex=SALT_TTL_S)
        value = await self._redis.get(key)
        salt = value.decode() if isinstance(value, bytes) else str(value)
        if len(self._cache) > 4:
            self._cache.clear()
        self._cache[day] = salt
        return salt

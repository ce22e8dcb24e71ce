"""Slow-KDF hashing of passwords and client secrets (argon2id via argon2-cffi).

The cost comes from the settings (``TRACKHOUSE_SECRET_HASH_TIME_COST`` / ``_MEMORY_KIB``);
the defaults, t=3 and 64 MiB, are RFC 9106's second recommendation and take about 0.1 s per
hash on the reference 2-core machine. Verification reads the cost from the stored hash, so
changing the settings never locks anyone out.
"""

from __future__ import annotations

import os
import secrets
import threading
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from trackhouse.settings import get_settings

SECRET_BYTES = 32
# Each argon2 run takes the configured memory (64 MiB by default) and one core's worth of
# time; bounding concurrent runs keeps a flood of wrong secrets from exhausting memory.
_KDF_SLOTS = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))


@lru_cache(maxsize=4)
def _hasher_with(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


def hasher() -> PasswordHasher:
    settings = get_settings()
    return _hasher_with(settings.secret_hash_time_cost, settings.secret_hash_memory_kib)


def hash_secret(plaintext: str) -> str:
    with _KDF_SLOTS:
        return hasher().hash(plaintext)


def verify_secret(stored_hash: str, plaintext: str, *,
                  slots: threading.BoundedSemaphore | None = _KDF_SLOTS) -> bool:
    """True when ``plaintext`` matches ``stored_hash``; False for a mismatch or a corrupt hash.

    ``slots=None`` for a caller that bounds its runs itself (the collector's verification
    lanes, ``accounts.auth``): one shared semaphore would let unverified attempts hold the
    places of known clients."""
    try:
        if slots is None:
            return hasher().verify(stored_hash, plaintext)
        with slots:
            return hasher().verify(stored_hash, plaintext)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with other parameters than the current settings'."""
    try:
        return hasher().check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    return _hasher_with(time_cost, memory_kib).hash(secrets.token_urlsafe(SECRET_BYTES))


def burn_verify_time(plaintext: str) -> None:
    """Spend one verify's worth of time, so an unknown user answers as slowly as a known one."""
    settings = get_settings()
    verify_secret(_dummy_hash(settings.secret_hash_time_cost, settings.secret_hash_memory_kib),
                  plaintext)


def new_secret() -> str:
    """A fresh client secret: 32 random bytes, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)

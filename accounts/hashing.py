"""Slow-KDF hashing of passwords and client secrets (argon2id via argon2-cffi)."""

from __future__ import annotations

import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults follow RFC 9106's second recommendation (argon2id, 64 MiB, t=3);
# about 0.1 s per hash on the reference 2-core machine.
_hasher = PasswordHasher()

SECRET_BYTES = 32


def hash_secret(plaintext: str) -> str:
    return _hasher.hash(plaintext)


def verify_secret(stored_hash: str, plaintext: str) -> bool:
    """True when ``plaintext`` matches ``stored_hash``; False for a mismatch or a corrupt hash."""
    try:
        return _hasher.verify(stored_hash, plaintext)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(SECRET_BYTES))


def burn_verify_time(plaintext: str) -> None:
    """Spend one verify's worth of time, so an unknown user answers as slowly as a known one."""
    verify_secret(_dummy_hash(), plaintext)


def new_secret() -> str:
    """A fresh client secret: 32 random bytes, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)

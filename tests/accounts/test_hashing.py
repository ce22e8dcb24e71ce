"""The real argon2 parameters (the other accounts tests use cheaper ones to stay fast)."""

from __future__ import annotations

import time

import pytest

from accounts.hashing import hash_secret, needs_rehash, verify_secret
from trackhouse.settings import get_settings


@pytest.fixture
def default_cost(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TRACKHOUSE_SECRET_HASH_TIME_COST", raising=False)
    monkeypatch.delenv("TRACKHOUSE_SECRET_HASH_MEMORY_KIB", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_default_cost_is_rfc9106_argon2id_and_slow(default_cost) -> None:
    started = time.perf_counter()
    stored = hash_secret("a client secret")
    elapsed = time.perf_counter() - started
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert elapsed > 0.02  # a slow KDF, not a fast digest
    assert verify_secret(stored, "a client secret")
    assert not verify_secret(stored, "another secret")
    assert not verify_secret("not a hash", "a client secret")
    assert not needs_rehash(stored)


def test_cheaper_old_hashes_still_verify_and_ask_for_rehash(default_cost,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("TRACKHOUSE_SECRET_HASH_TIME_COST", "1")
    monkeypatch.setenv("TRACKHOUSE_SECRET_HASH_MEMORY_KIB", "8192")
    get_settings.cache_clear()
    cheap = hash_secret("pw")
    monkeypatch.delenv("TRACKHOUSE_SECRET_HASH_TIME_COST")
    monkeypatch.delenv("TRACKHOUSE_SECRET_HASH_MEMORY_KIB")
    get_settings.cache_clear()
    assert verify_secret(cheap, "pw")
    assert needs_rehash(cheap)

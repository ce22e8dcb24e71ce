"""Origin matching (no database)."""

from __future__ import annotations

import pytest

from accounts.auth import TTLCache, origin_allowed

CASES = [
    # (origin, patterns, allowed)
    ("https://example.com", ["https://example.com"], True),
    ("https://EXAMPLE.com", ["https://example.com/"], True),
    ("https://example.com/", ["https://example.com"], True),
    ("http://example.com", ["https://example.com"], False),
    ("https://example.com", ["example.com"], True),  # no scheme: http or https
    ("http://example.com", ["example.com"], True),
    ("https://example.com:443", ["example.com"], True),  # explicit default port
    ("https://example.com:8443", ["example.com"], False),
    ("https://example.com:8443", ["example.com:8443"], True),
    ("http://localhost:3000", ["http://localhost:3000"], True),
    ("http://localhost:3001", ["http://localhost:3000"], False),
    ("https://www.example.com", ["*.example.com"], True),
    ("https://a.b.example.com", ["*.example.com"], True),
    ("https://example.com", ["*.example.com"], False),  # subdomains only
    ("https://badexample.com", ["*.example.com"], False),
    ("https://example.com.evil.io", ["*.example.com", "example.com"], False),
    ("https://www.example.com", ["https://*.example.com"], True),
    ("http://www.example.com", ["https://*.example.com"], False),
    ("https://anything.io", ["*"], True),
    ("null", ["*"], True),
    ("null", ["https://example.com"], False),
    ("https://example.com", [], False),
    ("", ["*"], False),
    ("https://example.com/path", ["https://example.com"], False),
    ("https://user@example.com", ["https://example.com"], False),
    ("http://[::1]:8080", ["http://[::1]:8080"], True),
    ("capacitor://localhost", ["capacitor://localhost"], True),
    ("https://example.com", ["not a pattern", "https://example.com"], True),
]


@pytest.mark.parametrize(("origin", "patterns", "allowed"), CASES)
def test_origin_allowed(origin: str, patterns: list[str], allowed: bool) -> None:
    assert origin_allowed(origin, patterns) is allowed


def test_ttl_cache_expires_and_is_bounded() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl_s=0.05, max_entries=3)
    for n in range(5):
        cache.set(f"k{n}", n)
    assert len(cache) == 3
    assert cache.get_or_compute("k4", lambda: -1) == 4
    assert cache.get_or_compute("k0", lambda: 100) == 100  # evicted, recomputed
    import time

    time.sleep(0.06)
    assert cache.get_or_compute("k4", lambda: 44) == 44  # expired, recomputed

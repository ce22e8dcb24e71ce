"""The Host and Origin rules every service shares (trackhouse/hosts.py)."""

from __future__ import annotations

import pytest

from trackhouse.hosts import AllowedHosts, same_origin, split_host


@pytest.mark.parametrize(("header", "expected"), [
    ("127.0.0.1:8123", ("127.0.0.1", 8123)),
    ("LocalHost.", ("localhost", None)),
    ("[::1]:3000", ("::1", 3000)),
    ("example.com:99999", None),
    ("user@example.com", None),
    ("example.com/path", None),
    ("", None),
    (None, None),
])
def test_split_host(header: str | None, expected: tuple[str, int | None] | None) -> None:
    assert split_host(header) == expected


def test_loopback_names_and_addresses_are_always_allowed() -> None:
    allowed = AllowedHosts()
    for host in ("localhost", "localhost:8501", "127.0.0.1", "127.0.0.5:80", "[::1]:3000",
                 "LOCALHOST."):
        assert allowed.allows(host), host
    for host in ("rebind.evil.example", "localhost.evil.example", "10.0.0.5", "", None,
                 "127.0.0.1.nip.io"):
        assert not allowed.allows(host), host


def test_configured_names_wildcards_and_the_bind_address() -> None:
    allowed = AllowedHosts(["Analytics.Example.com", "*.lan.example"], bind_host="10.0.0.5")
    for host in ("analytics.example.com", "analytics.example.com:443", "a.lan.example",
                 "b.a.lan.example", "10.0.0.5:8501"):
        assert allowed.allows(host), host
    for host in ("lan.example", "example.com", "evil-lan.example", "10.0.0.6"):
        assert not allowed.allows(host), host
    assert not AllowedHosts(bind_host="0.0.0.0").allows("0.0.0.0")
    assert AllowedHosts(["*"]).allows("anything.example")


def test_same_origin() -> None:
    assert same_origin("http://127.0.0.1:3000", "127.0.0.1:3000")
    assert same_origin("https://dagster.example.com", "dagster.example.com")  # behind a proxy
    assert not same_origin("http://127.0.0.1:9999", "127.0.0.1:3000")
    assert not same_origin("https://evil.example", "127.0.0.1:3000")
    assert not same_origin("null", "127.0.0.1:3000")

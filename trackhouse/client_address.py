"""The visitor's IP address behind proxies and server-side SDKs: one rule for the collector,
its rate limits and the dashboards' login limits (ground: imports nothing of Trackhouse).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache

# Forwarding headers believed only from trusted proxies, in order of preference.
SDK_IP_HEADERS = ("openpanel-client-ip", "x-client-ip")
PROXY_IP_HEADERS = ("cf-connecting-ip", "true-client-ip")


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress._BaseNetwork, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in trusted)


@lru_cache(maxsize=65_536)
def is_trusted(ip: str, trusted: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in _networks(trusted))


@lru_cache(maxsize=65_536)
def valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _first_valid(value: str | None) -> str | None:
    # ipaddress parsing costs more than the rest of the lookup: visitors repeat, so cache
    return valid_ip(value) if value else None


def client_ip(peer: str, headers: Mapping[str, str], trusted_proxies: Iterable[str], *,
              secret_client: bool) -> str:
    """The visitor's IP.

    ``openpanel-client-ip`` (or ``x-client-ip``) comes from server-side SDKs: believed when
    the sender proved its secret or is a trusted proxy. ``cf-connecting-ip``,
    ``true-client-ip`` and ``x-forwarded-for`` are believed only from trusted proxies; in
    ``x-forwarded-for`` the rightmost address that is not itself a trusted proxy is the
    visitor.
    """
    return _client_ip(peer, tuple(trusted_proxies), secret_client,
                      tuple(headers.get(name) for name in _IP_HEADERS))


_IP_HEADERS = (*SDK_IP_HEADERS, *PROXY_IP_HEADERS, "x-forwarded-for")


@lru_cache(maxsize=65_536)
def _client_ip(peer: str, trusted: tuple[str, ...], secret_client: bool,
               values: tuple[str | None, ...]) -> str:
    """``client_ip`` of the values of ``_IP_HEADERS`` (cached: a visitor's requests repeat
    them, and the address parsing costs microseconds)."""
    sdk_values, proxy_values, forwarded = values[:2], values[2:4], values[4]
    from_proxy = is_trusted(peer, trusted)
    if secret_client or from_proxy:
        # server-side SDKs forward the visitor's IP in these two
        for value in sdk_values:
            found = _first_valid(value)
            if found:
                return found
    if from_proxy:
        for value in proxy_values:
            found = _first_valid(value)
            if found:
                return found
        if forwarded:
            hops = [h for h in (_first_valid(p) for p in forwarded.split(",")) if h]
            for hop in reversed(hops):
                if not is_trusted(hop, trusted):
                    return hop
            if hops:
                return hops[0]
    return peer

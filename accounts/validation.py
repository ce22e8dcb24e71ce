"""Checks and normalisation of what users type: project slugs, time zones, domains, origin
patterns, e-mail addresses. Each raises ``InvalidInput`` with a message that says what to fix.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from accounts.errors import InvalidInput

SLUG_MAX = 64
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\]$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253})$")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
MIN_PASSWORD_LENGTH = 8


def validate_slug(value: str) -> str:
    slug = value.strip()
    if not _SLUG.match(slug):
        raise InvalidInput(
            f"invalid project id {value!r}: use 1-{SLUG_MAX} lowercase letters, digits and "
            "hyphens, starting and ending with a letter or digit (e.g. 'acme-shop')"
        )
    return slug


def slugify(name: str) -> str:
    """A URL-safe slug from a display name ('Acme Shop!' -> 'acme-shop'); 'project' if empty."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_MAX].strip("-") or "project"


@lru_cache(maxsize=1)
def _known_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> str:
    name = value.strip()
    if name in _known_time_zones():
        return name
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {value!r}: use an IANA name such as 'UTC', 'Europe/Berlin' "
            "or 'America/New_York'"
        ) from None
    return name


def _split_host_port(text: str, what: str, original: str) -> tuple[str, int | None]:
    host, port = text, None
    if text.startswith("["):  # [IPv6]:port
        end = text.find("]")
        if end == -1:
            raise InvalidInput(f"invalid {what} {original!r}: unclosed '['")
        host, rest = text[: end + 1], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise InvalidInput(f"invalid {what} {original!r}")
            port_text = rest[1:]
        else:
            port_text = ""
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
        if not port_text:
            raise InvalidInput(f"invalid {what} {original!r}: empty port after ':'")
    else:
        port_text = ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidInput(f"invalid {what} {original!r}: bad port {port_text!r}")
        port = int(port_text)
    return host, port


def _valid_host(host: str) -> bool:
    return bool(_HOSTNAME.match(host) or _IPV6.match(host)) and len(host) <= 253


def normalize_domain(value: str) -> str:
    """'https://Example.com/' -> 'example.com'; empty stays empty."""
    text = value.strip().lower()
    if not text:
        return ""
    if "://" in text:
        try:
            text = urlsplit(text).netloc
        except ValueError as error:  # e.g. an unclosed IPv6 bracket
            raise InvalidInput(f"invalid domain {value!r}: {error}") from None
    text = text.rstrip("/")
    host, port = _split_host_port(text, "domain", value)
    if not _valid_host(host):
        raise InvalidInput(f"invalid domain {value!r}: expected a host name such as 'example.com'")
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True)
class OriginPattern:
    """An allowed-origin pattern: ``*``, or ``[scheme://][*.]host[:port]``."""

    text: str
    any_origin: bool = False
    scheme: str | None = None
    host: str = ""
    wildcard: bool = False
    port: int | None = None

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        if self.any_origin:
            return True
        if self.scheme is not None and self.scheme != scheme:
            return False
        if self.wildcard:
            # '*.example.com' covers every subdomain, not the bare domain itself.
            if not host.endswith("." + self.host):
                return False
        elif host != self.host:
            return False
        # A pattern without a port allows only the default port of the origin's scheme.
        wanted = self.port if self.port is not None else DEFAULT_PORTS.get(scheme)
        actual = port if port is not None else DEFAULT_PORTS.get(scheme)
        return wanted == actual


@lru_cache(maxsize=4096)
def parse_origin_pattern(value: str) -> OriginPattern:
    text = value.strip().lower()
    if text == "*":
        return OriginPattern(text="*", any_origin=True)
    if not text:
        raise InvalidInput("an allowed origin cannot be empty")
    scheme = None
    rest = text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if not _SCHEME.match(scheme):
            raise InvalidInput(f"invalid origin {value!r}: bad scheme {scheme!r}")
    # one trailing slash is a common copy-paste from the address bar
    rest = rest[:-1] if rest.endswith("/") else rest
    text = f"{scheme}://{rest}" if scheme else rest
    if any(ch in rest for ch in "/?#@ \t"):
        raise InvalidInput(
            f"invalid origin {value!r}: an origin is scheme://host[:port] with no path, "
            "e.g. 'https://example.com', 'https://*.example.com' or '*'"
        )
    wildcard = rest.startswith("*.")
    if wildcard:
        rest = rest[2:]
    host, port = _split_host_port(rest, "origin", value)
    if not _valid_host(host):
        raise InvalidInput(
            f"invalid origin {value!r}: expected 'https://example.com', "
            "'*.example.com', 'localhost:3000' or '*'"
        )
    return OriginPattern(text=text, scheme=scheme, host=host, wildcard=wildcard, port=port)


def normalize_origins(values: Iterable[str] | str | None) -> list[str]:
    """Validated, normalised, de-duplicated origin patterns (order kept)."""
    if values is None:
        return []
    if isinstance(values, str):
        raise InvalidInput("allowed origins must be a list of patterns, not one string")
    result: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise InvalidInput(f"invalid origin {value!r}: expected a string")
        text = parse_origin_pattern(value).text
        if text not in result:
            result.append(text)
    return result


def validate_plausible_domain(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return normalize_domain(value)


def validate_umami_website_id(value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return None
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise InvalidInput(
            f"invalid Umami website id {value!r}: expected a UUID like "
            "'2f1a4d3e-9b7c-4c1e-8f00-0123456789ab'"
        ) from None


def normalize_email(value: str) -> str:
    email = value.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput(f"invalid e-mail address {value!r}")
    return email


def validate_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


@lru_cache(maxsize=8192)
def parse_origin(value: str) -> tuple[str, str, int | None] | None:
    """A request's ``Origin`` as (scheme, host, port), or None when it is not a real origin
    (``null``, garbage, a path). Cached: the collector sees the same few origins all day."""
    text = value.strip().lower()
    if text.endswith("/"):
        text = text[:-1]
    scheme, sep, rest = text.partition("://")
    if not sep or not _SCHEME.match(scheme) or not rest or any(ch in rest for ch in "/?#@ \t"):
        return None
    try:
        host, port = _split_host_port(rest, "origin", value)
    except InvalidInput:
        return None
    if not _valid_host(host):
        return None
    return scheme, host, port

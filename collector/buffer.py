"""The Redis side of ingestion: the accept-once buffer, batches, dead letters.

Every multi-step change is one Lua script (``collector/lua/*.lua``, each headed by its KEYS,
ARGV and reply), so it is atomic and costs one round trip:

- ``accept`` (one call per group of concurrent requests, ``pipeline.AcceptGroups``): rate
  limits, the backlog bound, live sessions and deduplication per request, then the group's
  new rows appended to their lane's buffer (``LANES``) as ONE chunk, with its row count
  alongside (ADR 0022);
- ``claim``: whole chunks, up to N rows, into one batch with a fresh id, registered in the
  lane's pending set;
- ``finish``: forget a batch ClickHouse acknowledged; ``recover``: take a batch due again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources

from trackhouse.buffer_layout import BACKLOG_KEYS, LANES, PREFIX, Keys
from trackhouse.session_ids import SESSION_DAYS_TTL_S

__all__ = ["ACCEPT", "BACKLOG_KEYS", "BUFFER_KEYS", "CLAIM", "FINISH", "LANES", "PREFIX",
           "RECOVER", "Keys", "AcceptLimits", "AcceptRequest", "accept_call", "lua_source"]


def lua_source(*names: str) -> str:
    """A script's source: the package's ``lua/<name>.lua`` files, joined in order (a prelude
    of functions first)."""
    folder = resources.files(__package__).joinpath("lua")
    return "\n".join(folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
                     for name in names)


ACCEPT = lua_source("sessions", "accept")
CLAIM = lua_source("claim")
FINISH = lua_source("finish")
RECOVER = lua_source("recover")


@dataclass(slots=True)
class AcceptRequest:
    """One request's share of an accept call (``lua/accept.lua``); its rows are encoded by
    ``trackhouse.row_encoding.RowEncoder``."""

    project: str
    day: date  # the UTC day of its salts: its sessions are kept under it and the day before
    # (counter key, expiry s, allowed amount) of each rate limit it is charged one hit on
    limits: tuple[tuple[str, int, int], ...]
    # the rows, in ``row_encoding.EncodedRows``' order
    events_blob: bytes
    profiles_blob: bytes
    layout: bytes
    tokens: bytes
    live_rows: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class AcceptLimits:
    """The accept script's settings, the same for every request of a process."""

    backlog_limit: int
    session_idle_ms: int
    event_ids_ttl_s: int
    request_window_ms: int  # a request fingerprint's duplicate window
    sessions_ttl_s: int = SESSION_DAYS_TTL_S


# the accept script sums KEYS[7..10], the backlog's counters, against the backlog bound
BUFFER_KEYS = (*map(Keys.buffer, LANES), *map(Keys.chunk_rows, LANES), *BACKLOG_KEYS)


@lru_cache(maxsize=1_024)
def session_keys(project: str, day: date) -> tuple[str, str]:
    """The session hashes of a request of ``day``: that day's and the day before's."""
    return Keys.sessions(project, day), Keys.sessions(project, day - timedelta(days=1))


def accept_call(requests: list[AcceptRequest], window: int, limits: AcceptLimits,
                buffer_keys: tuple[str, ...] = BUFFER_KEYS) -> tuple[list[str], list[bytes]]:
    """KEYS and ARGV of one ``ACCEPT`` call for ``requests`` (in order), with the event ids
    remembered in dedup window ``window``'s set."""
    keys = [*buffer_keys, Keys.seen_ids(window), Keys.seen_ids(window - 1)]
    positions: dict[str, int] = {}

    def position(key: str) -> int:
        found = positions.get(key)
        if found is None:
            keys.append(key)
            found = positions[key] = len(keys)
        return found

    head = [limits.backlog_limit, limits.session_idle_ms, limits.event_ids_ttl_s,
            limits.request_window_ms, limits.sessions_ttl_s, len(requests)]
    counters: dict[str, tuple[int, int]] = {}
    args: list[bytes] = [b""]
    for request in requests:
        today_key, yesterday_key = session_keys(request.project, request.day)
        today, yesterday = position(today_key), position(yesterday_key)
        fields = [request.project, str(today), str(yesterday), str(len(request.live_rows))]
        for key, expiry, amount in request.limits:
            counters[key] = (expiry, amount)
            fields.append(str(position(key)))
        args += ["\0".join(fields).encode(), request.events_blob, request.profiles_blob,
                 request.layout, request.tokens]
        for live_fields, row in request.live_rows:
            args += (live_fields, row)
    for key, (expiry, amount) in counters.items():
        head += [positions[key], expiry, amount]
    args[0] = "\0".join(map(str, head)).encode()
    return keys, args

"""The collector's Redis buffer as its readers see it: key layout, lanes, backlog figures, dead
letters.

One module, imported by every side: the collector (which writes the buffer through its Lua
scripts, ``collector/lua/``), the worker (which claims and lands it), ``/ready``,
``trackhouse deadletters`` and the Dagster checks. It sits on the ground floor because
nothing but the CLI may import the collector.

Rows are buffered as chunks (one list element per request or group of requests), so a
buffer list's length is not its row count: rows are counted in ``Keys.buffered_rows`` and,
once claimed into batches, in ``Keys.inflight``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

# A lane is one buffer and its batches, landing in one raw table (lane -> table). History
# imports have a lane of their own: an import of millions of rows makes its lane busy (large,
# rarer inserts) and fills its own buffer, while live events keep a quiet lane that flushes
# every few hundred milliseconds, and their landing jobs go first (``collector/worker.py``), so
# a running import does not delay what the realtime page shows. The accept script addresses
# the lanes by position in this order (1 live events, 2 profiles, 3 imports;
# ``collector.buffer.BUFFER_KEYS``, collector/lua/accept.lua): a lane added here needs its
# place in the script too.
LANES: Mapping[str, str] = {"events": "events", "profiles": "profiles", "imports": "events"}
PREFIX = "th:"


@dataclass(frozen=True)
class Keys:
    """Redis key names."""

    @staticmethod
    def buffer(lane: str) -> str:
        """List of chunks: the rows one request (or group) added to ``lane``, joined by
        newlines."""
        return f"{PREFIX}buf:{lane}"

    @staticmethod
    def chunk_rows(lane: str) -> str:
        """List of the row count of each chunk of ``buffer(lane)``, in the same order."""
        return f"{PREFIX}bufn:{lane}"

    @staticmethod
    def buffered_rows(lane: str) -> str:
        """Counter: rows in ``buffer(lane)``."""
        return f"{PREFIX}bufrows:{lane}"

    @staticmethod
    def pending(lane: str) -> str:
        """Sorted set: batch id -> time (ms) after which it may be (re)enqueued."""
        return f"{PREFIX}pending:{lane}"

    @staticmethod
    def batch(batch_id: str) -> str:
        return f"{PREFIX}batch:{batch_id}"

    @staticmethod
    def lease(batch_id: str) -> str:
        return f"{PREFIX}lease:{batch_id}"

    @staticmethod
    def attempts(lane: str) -> str:
        return f"{PREFIX}attempts:{lane}"

    @staticmethod
    def dead_letter(lane: str) -> str:
        """List of JSON entries (``dead_letter_entry``): rows ClickHouse rejected."""
        return f"{PREFIX}dead:{lane}"

    # Counter: rows claimed into batches and not yet acknowledged by ClickHouse.
    inflight = f"{PREFIX}inflight_rows"

    @staticmethod
    def sessions(project_id: str, day: date) -> str:
        """Hash: device id -> "session start ms:last seen ms", for the devices of one UTC day
        (a device id is salted per day; an SDK's own device id is kept under each day it is
        seen; its values: ``trackhouse.session_ids``). Expires ``session_ids.SESSION_DAYS_TTL_S``
        after its last write."""
        return f"{PREFIX}s:{project_id}:{day.isoformat()}"

    @staticmethod
    def salt(day: date) -> str:
        """The secret salt of one UTC day's cookieless device ids (``identity.DailySalts``)."""
        return f"{PREFIX}salt:{day.isoformat()}"

    @staticmethod
    def dedup(kind: str, value: str) -> str:
        """A request fingerprint's own key (``SET NX PX``: the duplicate window)."""
        return f"{PREFIX}seen:{kind}:{value}"

    @staticmethod
    def seen_ids(window: int) -> str:
        """Set of the event ids accepted in one dedup window (``collector_event_dedup_ttl_s``
        long); an id counts as seen while it is in this window's set or the previous one's."""
        return f"{PREFIX}seen:ids:{window}"


# The counters whose sum is the backlog the collector bounds (TRACKHOUSE_COLLECTOR_BACKLOG_LIMIT):
# every lane's buffered rows, then the rows in flight. The accept script sums the same keys.
BACKLOG_KEYS = (*map(Keys.buffered_rows, LANES), Keys.inflight)


@dataclass(frozen=True)
class BufferFigures:
    """Rows accepted and not yet landed, and what the worker gave up on."""

    buffered_rows: int
    inflight_rows: int
    pending_batches: int
    dead_letters: int

    @property
    def backlog_rows(self) -> int:
        """Accepted rows not yet in ClickHouse: buffered plus claimed into batches."""
        return self.buffered_rows + self.inflight_rows

    @staticmethod
    def queue(pipeline: Any) -> None:
        """Queue the reads on a Redis pipeline (sync or asyncio); ``from_replies`` reads the
        replies."""
        for key in BACKLOG_KEYS:
            pipeline.get(key)
        for lane in LANES:
            pipeline.zcard(Keys.pending(lane))
        for lane in LANES:
            pipeline.llen(Keys.dead_letter(lane))

    @classmethod
    def from_replies(cls, replies: list[Any]) -> BufferFigures:
        lanes = len(LANES)
        counters = [int(value or 0) for value in replies[:lanes + 1]]
        return cls(
            buffered_rows=sum(counters[:lanes]), inflight_rows=counters[lanes],
            pending_batches=sum(int(n) for n in replies[lanes + 1:2 * lanes + 1]),
            dead_letters=sum(int(n) for n in replies[2 * lanes + 1:3 * lanes + 1]),
        )

    @classmethod
    def read(cls, client: Any) -> BufferFigures:
        """The figures from a synchronous Redis client, read in one round trip."""
        pipeline = client.pipeline(transaction=False)
        cls.queue(pipeline)
        return cls.from_replies(pipeline.execute())


def dead_letter_entry(lane: str, batch: str, reason: str, row: bytes, at: str) -> bytes:
    """One dead-letter list element: the rejected row, with where it came from and why."""
    return orjson.dumps({"table": LANES[lane], "lane": lane, "batch": batch,
                         "reason": reason[:2000], "at": at,
                         "row": row.decode("utf-8", "replace")})


def dead_letters(client: Any, limit: int = 20) -> dict[str, tuple[int, list[dict]]]:
    """Per lane: how many rows ClickHouse rejected, and the latest ``limit`` of them."""
    found = {}
    for lane in LANES:
        key = Keys.dead_letter(lane)
        entries = [orjson.loads(raw) for raw in client.lrange(key, -limit, -1)]
        found[lane] = (int(client.llen(key)), entries)
    return found

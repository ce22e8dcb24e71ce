"""The engine every importer shares: read a source in chunks, send each chunk through the
collector's import path (``POST /track/batch?import=true``), count the collector's per-event
answers, and keep a checkpoint in the metadata database committed only after the collector
acknowledged the chunk.

A source (``importers.umami``, ``importers.ga4``, ``importers.openpanel``) turns its rows into
collector messages whose ``__eventId`` is derived from the source's own ids
(``source_event_id``): the collector derives the stored event id from it and the project, so a
chunk sent twice (a resumed import, a rerun with ``--restart``) is answered ``duplicate`` or,
past the collector's dedup window, kept once by staging's one row per event id.
"""

from __future__ import annotations

import gc
import hashlib
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

# Namespace of the event ids derived from sources' ids (never change it: reruns match on it).
IMPORT_NAMESPACE = uuid.UUID("6f1c3f0e-2b8a-5d7e-9a43-0c6d1e2f7b91")
# Distinct refusal reasons kept per import; the rest are counted under one line.
MAX_REASONS = 50
OTHER_REASONS = "(other reasons)"
# Answers worth waiting for: rate limited, buffer full, collector restarting.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


_NAMESPACE_BYTES = IMPORT_NAMESPACE.bytes


def source_event_id(source: str, *parts: str) -> str:
    """A stable event id of a source row: ``uuid.uuid5(IMPORT_NAMESPACE, parts joined)``, the
    same row always gets the same id (written out: a third of the cost of ``uuid.uuid5``)."""
    return _uuid5_text(hashlib.sha1(
        _NAMESPACE_BYTES + "\x1f".join((source, *parts)).encode()).digest())


def source_event_ids(source: str, *prefix: str) -> Callable[[str], str]:
    """``source_event_id(source, *prefix, last)`` as a function of ``last``: the hash of the
    common prefix (source, website, ...) is computed once per import, not once per row."""
    common = hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join((source, *prefix, "")).encode())

    def event_id(last: str) -> str:
        digest = common.copy()
        digest.update(last.encode())
        return _uuid5_text(digest.digest())

    return event_id


def _uuid5_text(sha1: bytes) -> str:
    digest = bytearray(sha1[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def source_key(*parts: str) -> str:
    """The checkpoint key of an import (a hash: no passwords or paths stored)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:64]


class ImportFailed(Exception):
    """The import cannot go on (collector unreachable, credentials refused, source unreadable);
    the checkpoint keeps what was acknowledged."""


@dataclass
class Chunk:
    """Messages read from a source, and where reading continues after them."""

    messages: list[dict[str, Any]]
    # the source's row id of each message, for the refusals' examples
    row_ids: list[str]
    # JSON text the source resumes from once this chunk is stored
    position: str
    # rows refused before sending (unmappable), as (row id, reason)
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.messages) + len(self.refused)


class Source(Protocol):
    name: str  # umami | ga4 | openpanel
    key: str  # checkpoint key: ``source_key`` of what identifies the data
    description: str  # shown and stored; never a secret

    def count(self, position: str | None) -> int | None:
        """Rows left after ``position`` (None when unknown): the progress bar's total."""

    def chunks(self, position: str | None, size: int) -> Iterator[Chunk]:
        """Chunks of at most ``size`` rows, starting after ``position`` (None: the start)."""


@dataclass
class Tally:
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    refused: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> a source row id

    def refuse(self, reason: str, row_id: str) -> None:
        self.refused += 1
        if reason not in self.reasons and len(self.reasons) >= MAX_REASONS:
            reason = OTHER_REASONS
        self.reasons[reason] += 1
        self.examples.setdefault(reason, row_id)

    def add(self, other: Tally) -> None:
        self.read += other.read
        self.imported += other.imported
        self.duplicates += other.duplicates
        for reason, count in other.reasons.items():
            self.refused += count
            self.reasons[reason] += count
            self.examples.setdefault(reason, other.examples.get(reason, ""))


@dataclass
class Target:
    """Where the events go: a collector and a write (or root) client with its secret."""

    url: str
    client_id: str
    secret: str


class Sender:
    """Posts chunks to ``/track/batch?import=true`` (a JSON array each) and returns the
    per-event results."""

    def __init__(self, target: Target, http: httpx.Client | None = None, *,
                 retries: int = 8) -> None:
        self.target = target
        self.http = http or httpx.Client(base_url=target.url, timeout=120)
        self.retries = retries
        self.headers = {
            "openpanel-client-id": target.client_id,
            "openpanel-client-secret": target.secret,
            "x-trackhouse-import": "true",
            "content-type": "application/json",
            "user-agent": "trackhouse-import",
        }

    def send(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = orjson.dumps(messages)  # a JSON array: one parse on each side, not one a line
        answer = with_retries(
            lambda: self.http.post("/track/batch?import=true", content=body,
                                   headers=self.headers),
            self.retries, RETRY_STATUSES, f"the collector at {self.target.url} did not answer")
        if answer.status_code == 200:
            results: list[dict[str, Any]] = orjson.loads(answer.content)["results"]
            if len(results) != len(messages):
                raise ImportFailed("the collector answered a different number of results")
            return results
        if answer.status_code == 413 and len(messages) > 1:
            # over the collector's body limit: each half on its own, results in order
            half = len(messages) // 2
            return self.send(messages[:half]) + self.send(messages[half:])
        raise ImportFailed(f"the collector refused the chunk with {answer.status_code}: "
                           f"{_error_text(answer)}")


def with_retries(call: Callable[[], httpx.Response], retries: int,
                 statuses: frozenset[int], unreachable: str) -> httpx.Response:
    """``call``'s answer, a transport error or an answer in ``statuses`` (rate limited,
    overloaded, restarting) tried again up to ``retries`` times, waiting its ``Retry-After``
    (at most 30 s) or a doubling delay; the last answer when retries run out."""
    delay = 0.5
    for attempt in range(retries + 1):
        try:
            answer = call()
        except httpx.TransportError as error:
            if attempt == retries:
                raise ImportFailed(f"{unreachable}: {error}") from None
            wait = ""
        else:
            if answer.status_code not in statuses or attempt == retries:
                return answer
            wait = answer.headers.get("retry-after", "")
        time.sleep(min(float(wait), 30) if wait.isdigit() else delay)
        delay = min(delay * 2, 10)
    raise ImportFailed("unreachable")  # the loop returns or raises


def _error_text(answer: httpx.Response) -> str:
    try:
        return str(orjson.loads(answer.content).get("error", answer.text))[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return answer.text[:300]


class Checkpoints(Protocol):
    def load(self) -> tuple[str | None, Tally, bool]:
        """(position, counts so far, finished) of this import."""

    def save(self, position: str, counts: Tally) -> None:
        """Commit the position after an acknowledged chunk with that chunk's counts."""

    def finish(self) -> None: ...


@dataclass
class Outcome:
    """What one run did, and the totals of the import over every run."""

    run: Tally
    total: Tally
    resumed: bool
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.run.read / self.elapsed_s if self.elapsed_s > 0 else 0.0


Progress = Callable[[int, int | None], None]  # (rows just done, total or None)


# Collections less often during an import: the chunks in flight hold tens of thousands of
# (acyclic) message dicts, and the default threshold (700 allocations) walked them every few
# rows: Umami's reading and mapping took 14.3-15.6 us a row with it, 11.6 without (alternated).
IMPORT_GC_THRESHOLD = (100_000, 50, 100)


@contextmanager
def fewer_collections() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*IMPORT_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def run_import(source: Source, sender: Sender, checkpoints: Checkpoints, *,
               chunk_size: int = 5_000, concurrency: int = 4, max_rate: float = 0,
               progress: Progress | None = None) -> Outcome:
    """Import ``source`` from its checkpoint; chunks travel ``concurrency`` at a time but
    their checkpoints are committed in source order, each once it and every earlier chunk
    were acknowledged. ``max_rate``: at most this many rows per second (0: no limit)."""
    position, total, finished = checkpoints.load()
    resumed = position is not None
    run = Tally()
    started = time.monotonic()
    if progress is not None:
        progress(0, source.count(position))
    pending: deque[tuple[Chunk, Future[list[dict[str, Any]]] | None]] = deque()

    def settle() -> None:
        chunk, future = pending.popleft()
        counts = Tally(read=chunk.read)
        for row_id, reason in chunk.refused:
            counts.refuse(reason, row_id)
        results = future.result() if future is not None else []
        for row_id, result in zip(chunk.row_ids, results, strict=True):
            status = result.get("status")
            if status == "accepted":
                counts.imported += 1
            elif status == "duplicate":
                counts.duplicates += 1
            else:
                counts.refuse(str(result.get("error", "refused")), row_id)
        checkpoints.save(chunk.position, counts)
        run.add(counts)
        total.add(counts)
        if progress is not None:
            progress(chunk.read, None)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool, fewer_collections():
        try:
            for chunk in source.chunks(position, chunk_size):
                if max_rate > 0:
                    ahead = (run.read + sum(c.read for c, _ in pending)) / max_rate - (
                        time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                future = pool.submit(sender.send, chunk.messages) if chunk.messages else None
                pending.append((chunk, future))
                while pending and (len(pending) > concurrency or pending[0][1] is None
                                   or pending[0][1].done()):
                    settle()
            while pending:
                settle()
        except BaseException:
            for _, future in pending:
                if future is not None:
                    future.cancel()
            raise
    if not finished or run.read:
        checkpoints.finish()
    return Outcome(run=run, total=total, resumed=resumed, elapsed_s=time.monotonic() - started)

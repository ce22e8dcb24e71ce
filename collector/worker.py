"""The RQ worker that lands buffered rows in ClickHouse, exactly once in effect.

One ``trackhouse worker`` process runs three loops:

- the *flusher* (a thread) claims batches from each lane's buffer (``buffer.LANES``: live
  events, profiles, history imports), at ``worker_batch_size`` rows or every
  ``worker_flush_interval_ms``, whichever comes first, and enqueues one RQ job per batch; a
  lane receiving ``worker_busy_rows_per_s`` or more flushes every
  ``worker_busy_flush_interval_ms`` instead, until the rate falls below half that (fewer,
  larger inserts: the warehouse's CPU per row falls by a third); it also re-enqueues
  batches whose worker died or whose retry time has come;
- two RQ ``SimpleWorker`` loops (no fork per job: a job is one HTTP insert, far cheaper than
  a fork) run ``land_batch`` jobs: one takes live jobs first and import jobs when there are
  none, the other (a thread) takes live jobs only, so a live batch never waits behind an
  import's insert of tens of thousands of rows.

A batch is a fixed JSONEachRow body stored in Redis under its id (a list of chunks, each the
rows of one request). ``land_batch`` inserts it with
``insert_deduplication_token = batch id``, so landing the same batch twice (a lost
acknowledgement, a worker killed after the insert, two workers racing) stores it once; only
after ClickHouse acknowledged it is the batch deleted. Transport failures (warehouse down) are
retried with exponential backoff; rows ClickHouse rejects are isolated by bisection and moved to
the dead-letter list with the reason, and the rest of the batch lands.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import redis
from clickhouse_connect.driver.client import Client as WarehouseClient
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from rq import Queue, SimpleWorker
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus

from collector.buffer import CLAIM, FINISH, LANES, RECOVER, Keys
from trackhouse import event_times
from trackhouse.buffer_layout import dead_letter_entry
from trackhouse.row_encoding import count_rows, join_rows, split_rows
from trackhouse.settings import Settings, get_settings
from warehouse.client import warehouse
from warehouse.migrate import SchemaBehind, wait_for_schema

log = logging.getLogger(__name__)

QUEUE_NAME = "trackhouse-land"  # live lanes' batches
IMPORTS_QUEUE_NAME = "trackhouse-land-imports"
MAX_BACKOFF_S = 60.0
RECOVERY_EVERY_S = 1.0
# ClickHouse error codes that mean "this data is wrong" (retrying cannot help): parse errors,
# type mismatches, out-of-range values, unknown fields, NULL in a non-Nullable column.
DATA_ERROR_CODES = frozenset({
    6, 16, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 76, 117, 130, 131, 190, 349, 376, 378,
    441, 458, 459, 467, 601,
})
_CODE = re.compile(r"Code: (\d+)")
INSERT_SETTINGS = {
    "input_format_skip_unknown_fields": 0,
    # No ReplacingMergeTree pass over each inserted block: the collector already dropped the
    # copies of an event id within its dedup window, and later copies fold in merges and
    # staging anyway; it costs the warehouse a fifth of its CPU per row (ADR 0022).
    "optimize_on_insert": 0,
}


def is_data_error(error: Exception) -> bool:
    if isinstance(error, OperationalError):
        return False
    match = _CODE.search(str(error))
    return match is not None and int(match.group(1)) in DATA_ERROR_CODES


class TransientError(Exception):
    """The warehouse could not take the batch now; try again later."""


class Lander:
    """Lands claimed batches; one per worker process (holds its warehouse client)."""

    def __init__(self, settings: Settings, connection: redis.Redis) -> None:
        self.settings = settings
        self.redis = connection
        self.finish = connection.register_script(FINISH)
        self._client: WarehouseClient | None = None
        # the lease's value: which host and process holds a batch (one look tells who died)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def client(self) -> WarehouseClient:
        if self._client is None:
            self._client = warehouse(self.settings, send_receive_timeout=120)
        return self._client

    def land(self, lane: str, batch_id: str) -> str:
        """Land one batch of ``lane``; returns 'landed', 'gone' (already landed), 'busy' or
        'retry'."""
        lease_ms = self.settings.worker_batch_lease_s * 1000
        if not self.redis.set(Keys.lease(batch_id), self.name, nx=True, px=lease_ms):
            return "busy"
        data = self._batch_rows(batch_id)
        if data is None:
            self._finish(lane, batch_id, 0)
            return "gone"
        rows = count_rows(data)
        try:
            self._insert(lane, data, batch_id)
        except (TransientError, OperationalError) as error:
            self._client = None  # reconnect next time
            attempts = int(self.redis.hincrby(Keys.attempts(lane), batch_id, 1))
            delay = min(MAX_BACKOFF_S, 0.5 * 2 ** (attempts - 1))
            retry_at = int((time.time() + delay) * 1000)
            self.redis.zadd(Keys.pending(lane), {batch_id: retry_at})
            self.redis.delete(Keys.lease(batch_id))
            log.warning("batch %s (%d %s rows) not landed, attempt %d, retry in %.1f s: %s",
                        batch_id, rows, lane, attempts, delay, str(error)[:300])
            return "retry"
        self._finish(lane, batch_id, rows)
        return "landed"

    def _batch_rows(self, batch_id: str) -> bytes | None:
        """The batch's rows, or None when it is gone (already landed)."""
        chunks = self.redis.lrange(Keys.batch(batch_id), 0, -1)
        return join_rows(chunks) if chunks else None

    def _finish(self, lane: str, batch_id: str, rows: int) -> None:
        keys = [Keys.pending(lane), Keys.inflight, Keys.batch(batch_id), Keys.lease(batch_id),
                Keys.attempts(lane)]
        self.finish(keys=keys, args=[batch_id, rows])

    def _insert(self, lane: str, data: bytes, token: str) -> None:
        """Insert ``data`` (JSONEachRow) into ``lane``'s table; bisect around rows ClickHouse
        rejects.

        Halves get tokens derived from the batch's (``id.a``, ``id.b``...), so a bisection
        interrupted and replayed deduplicates the parts that had landed.
        """
        try:
            self.client().raw_insert(
                f"{self.settings.raw_database}.{LANES[lane]}", insert_block=data, fmt="JSONEachRow",
                settings=INSERT_SETTINGS | {
                    "insert_deduplication_token": token,
                    "max_partitions_per_insert_block": event_times.months_in_range()},
            )
        except DatabaseError as error:
            if not is_data_error(error):
                raise TransientError(str(error)) from error
            lines = split_rows(data)
            if len(lines) == 1:
                self._dead_letter(lane, data, token, str(error))
                return
            middle = len(lines) // 2
            self._insert(lane, join_rows(lines[:middle]), f"{token}.a")
            self._insert(lane, join_rows(lines[middle:]), f"{token}.b")

    def _dead_letter(self, lane: str, row: bytes, token: str, reason: str) -> None:
        log.error("row rejected by ClickHouse, moved to dead letters (%s): %s", lane, reason[:300])
        self.redis.rpush(Keys.dead_letter(lane), dead_letter_entry(
            lane, token, reason, row, at=datetime.now(UTC).isoformat()))


_landers = threading.local()  # one per landing loop: a warehouse client is not shared


def land_batch(lane: str, batch_id: str) -> str:
    """RQ job: land one claimed batch."""
    lander = getattr(_landers, "lander", None)
    if lander is None:
        settings = get_settings()
        lander = _landers.lander = Lander(settings, redis.Redis.from_url(settings.redis_url))
    return lander.land(lane, batch_id)


class Flusher(threading.Thread):
    """Claims batches from the buffer and (re-)enqueues their landing jobs."""

    def __init__(self, settings: Settings, connection: redis.Redis, queue: Queue,
                 imports_queue: Queue | None = None) -> None:
        super().__init__(name="trackhouse-flusher", daemon=True)
        self.settings = settings
        self.redis = connection
        # each lane's landing jobs go to its queue: imports to their own, so live jobs first
        self.queues = dict.fromkeys(LANES, queue)
        if imports_queue is not None:
            self.queues["imports"] = imports_queue
        self.claim = connection.register_script(CLAIM)
        self.take_due = connection.register_script(RECOVER)
        self.stopping = threading.Event()
        self._quiet_interval = settings.worker_flush_interval_ms / 1000
        self._busy_interval = max(settings.worker_busy_flush_interval_ms / 1000,
                                  self._quiet_interval)
        self._last_flush = dict.fromkeys(LANES, 0.0)
        self.interval = dict.fromkeys(LANES, self._quiet_interval)
        self._last_recovery = 0.0

    def run(self) -> None:
        tick = min(0.02, self._quiet_interval / 4)
        while not self.stopping.is_set():
            try:
                self.step(time.monotonic())
            except redis.RedisError as error:
                log.warning("flusher: Redis unavailable (%s); retrying", error)
                self.stopping.wait(1.0)
            self.stopping.wait(tick)

    def step(self, now: float) -> None:
        size = self.settings.worker_batch_size
        lengths = self.redis.pipeline(transaction=False)
        for lane in LANES:
            lengths.get(Keys.buffered_rows(lane))
        for lane, length in zip(LANES, (int(n or 0) for n in lengths.execute()), strict=True):
            waited = now - self._last_flush[lane]
            if length >= size or (length and waited >= self.interval[lane]):
                # nothing is claimed while too many batches are in flight: then the rows keep
                # waiting and the next tick tries again, so ``waited`` spans their arrival
                claimed = self.flush(lane)
                if claimed:
                    self._last_flush[lane] = now
                    interval = self.next_interval(claimed, waited, self.interval[lane])
                    if interval != self.interval[lane]:
                        log.info("%s: %d rows in %.2f s; flushing every %.2f s", lane, claimed,
                                 waited, interval)
                    self.interval[lane] = interval
        if now - self._last_recovery >= RECOVERY_EVERY_S:
            self.recover()
            self._last_recovery = now

    def next_interval(self, claimed: int, waited: float, current: float) -> float:
        """The wait before a lane's next flush: long once rows arrive at the busy rate or
        faster (measured over the last wait, at most the busy interval), short again only
        below half that rate (so a rate near the threshold does not flip it every flush)."""
        rate = claimed / max(min(waited, self._busy_interval), 1e-3)
        busy_rate = self.settings.worker_busy_rows_per_s
        was_busy = current == self._busy_interval > self._quiet_interval
        busy = rate >= (busy_rate / 2 if was_busy else busy_rate)
        return self._busy_interval if busy else self._quiet_interval

    def flush(self, lane: str) -> int:
        """Claim batches of ``lane`` while there are rows and room in flight."""
        total = 0
        while True:
            batch_id = uuid.uuid4().hex
            lease_until = int(time.time() * 1000) + self.settings.worker_batch_lease_s * 1000
            claimed, left = (int(n) for n in self.claim(
                keys=[Keys.buffer(lane), Keys.pending(lane), Keys.inflight, Keys.batch(batch_id),
                      Keys.chunk_rows(lane), Keys.buffered_rows(lane)],
                args=[batch_id, self.settings.worker_batch_size,
                      self.settings.worker_max_inflight_batches, lease_until],
            ))
            if not claimed:
                return total
            self.enqueue(lane, batch_id)
            total += claimed
            if not left:
                return total

    def enqueue(self, lane: str, batch_id: str) -> None:
        self.queues[lane].enqueue(land_batch, lane, batch_id, result_ttl=0, failure_ttl=86_400,
                                  job_timeout=600, description=f"land {lane} batch {batch_id}")

    def recover(self) -> None:
        """Re-enqueue batches due again: retries whose backoff passed, and batches whose
        worker died (their lease expired and nobody finished them)."""
        now_ms = int(time.time() * 1000)
        for lane, batch_id in self.due(now_ms):
            if self.take(lane, batch_id, now_ms):
                self.enqueue(lane, batch_id)

    def due(self, now_ms: int) -> list[tuple[str, str]]:
        """(lane, batch id) of the batches due again at ``now_ms`` (100 per lane at most)."""
        return [(lane, raw.decode()) for lane in LANES for raw in self.redis.zrangebyscore(
            Keys.pending(lane), 0, now_ms, start=0, num=100)]

    def take(self, lane: str, batch_id: str, now_ms: int) -> bool:
        """Whether this flusher re-enqueues the due batch: true for one flusher only, even
        when several found it due at once; it is then due again one lease later."""
        lease_ms = self.settings.worker_batch_lease_s * 1000
        return bool(self.take_due(keys=[Keys.pending(lane), Keys.lease(batch_id)],
                                  args=[batch_id, now_ms, now_ms + lease_ms]))


class _ThreadWorker(SimpleWorker):
    """A SimpleWorker in a thread of its own. Python installs signal handlers only in the main
    thread, so the main thread's worker decides when the process stops, and a job's timeout
    is a timer raising in this thread instead of SIGALRM."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


def run_worker(settings: Settings | None = None, *, burst: bool = False) -> None:
    """Run the flusher and the landing loops in this process (until stopped).

    ``burst``: land everything buffered now (and batches due for a retry), then return.
    """
    settings = settings or get_settings()
    try:
        wait_for_schema(settings, settings.worker_schema_wait_s)
    except SchemaBehind as error:
        raise SystemExit(f"trackhouse worker: {error}") from None
    connection = redis.Redis.from_url(settings.redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    imports_queue = Queue(IMPORTS_QUEUE_NAME, connection=connection)
    flusher = Flusher(settings, connection, queue, imports_queue)
    # RQ takes a job from the first queue that has one: live batches before imports
    worker = SimpleWorker([queue, imports_queue], connection=connection)
    if burst:
        while True:
            claimed = sum(flusher.flush(lane) for lane in LANES)
            flusher.recover()
            worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
            if not claimed:
                return
    live = _ThreadWorker([queue], connection=redis.Redis.from_url(settings.redis_url))
    # a daemon: at exit, an idle live loop (blocked waiting for a job) must not hold the
    # process; a busy one is waited for below
    live_thread = threading.Thread(target=live.work, name="trackhouse-live-lander", daemon=True,
                                   kwargs={"logging_level": "WARNING", "with_scheduler": False})
    flusher.start()
    live_thread.start()
    try:
        worker.work(logging_level="WARNING", with_scheduler=False)
    finally:
        flusher.stopping.set()
        live._stop_requested = True  # RQ's own flag: no new job after the current one
        deadline = time.monotonic() + 30
        while live.get_state() == WorkerStatus.BUSY and time.monotonic() < deadline:
            time.sleep(0.05)
        flusher.join(5)

"""The RQ worker that lands buffered rows in ClickHouse, exactly once in effect.

One ``trackhouse worker`` process runs two loops:

- the *flusher* (a thread) claims batches from the Redis buffer, at ``worker_batch_size`` rows
  or every ``worker_flush_interval_ms``, whichever comes first, and enqueues one RQ job per
  batch; a table receiving ``worker_busy_rows_per_s`` or more flushes every
  ``worker_busy_flush_interval_ms`` instead, until the rate falls below half that (fewer,
  larger inserts: the warehouse's CPU per row falls by a third); it also re-enqueues
  batches whose worker died or whose retry time has come;
- an RQ ``SimpleWorker`` (no fork per job: a job is one HTTP insert, far cheaper than a fork)
  runs ``land_batch`` jobs.

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
import re
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import orjson
import redis
from clickhouse_connect.driver.client import Client as WarehouseClient
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from rq import Queue, SimpleWorker

from collector.buffer import CLAIM, FINISH, TABLES, Keys
from trackhouse.settings import Settings, get_settings
from warehouse.client import warehouse

log = logging.getLogger(__name__)

QUEUE_NAME = "trackhouse-land"
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
    # copies of an event id (Redis, within its dedup window), so a block holds none, and later
    # copies fold in merges and staging anyway. Measured: warehouse CPU per landed row 8.5 ->
    # 6.6 us (45,000-row inserts, 45,000 rows/s, collector-made rows).
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
        self.name = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"

    def client(self) -> WarehouseClient:
        if self._client is None:
            self._client = warehouse(self.settings, send_receive_timeout=120)
        return self._client

    def land(self, table: str, batch_id: str) -> str:
        """Land one batch; returns 'landed', 'gone' (already landed), 'busy' or 'retry'."""
        lease_ms = self.settings.worker_batch_lease_s * 1000
        if not self.redis.set(Keys.lease(batch_id), self.name, nx=True, px=lease_ms):
            return "busy"
        data = self._batch_rows(batch_id)
        if data is None:
            self._finish(table, batch_id, 0)
            return "gone"
        rows = data.count(b"\n") + 1
        try:
            self._insert(table, data, batch_id)
        except (TransientError, OperationalError) as error:
            self._client = None  # reconnect next time
            attempts = int(self.redis.hincrby(Keys.attempts(table), batch_id, 1))
            delay = min(MAX_BACKOFF_S, 0.5 * 2 ** (attempts - 1))
            retry_at = int((time.time() + delay) * 1000)
            self.redis.zadd(Keys.pending(table), {batch_id: retry_at})
            self.redis.delete(Keys.lease(batch_id))
            log.warning("batch %s (%d %s rows) not landed, attempt %d, retry in %.1f s: %s",
                        batch_id, rows, table, attempts, delay, str(error)[:300])
            return "retry"
        self._finish(table, batch_id, rows)
        return "landed"

    def _batch_rows(self, batch_id: str) -> bytes | None:
        """The batch's rows, or None when it is gone (already landed)."""
        try:
            chunks = self.redis.lrange(Keys.batch(batch_id), 0, -1)
        except redis.ResponseError as error:
            if "WRONGTYPE" not in str(error):
                raise
            # claimed by a version that stored a batch as one string: land it all the same
            return self.redis.get(Keys.batch(batch_id))
        return b"\n".join(chunks) if chunks else None

    def _finish(self, table: str, batch_id: str, rows: int) -> None:
        keys = [Keys.pending(table), Keys.inflight, Keys.batch(batch_id), Keys.lease(batch_id),
                Keys.attempts(table)]
        self.finish(keys=keys, args=[batch_id, rows])

    def _insert(self, table: str, data: bytes, token: str) -> None:
        """Insert ``data`` (JSONEachRow); bisect around rows ClickHouse rejects.

        Halves get tokens derived from the batch's (``id.a``, ``id.b``...), so a bisection
        interrupted and replayed deduplicates the parts that had landed.
        """
        try:
            self.client().raw_insert(
                f"{self.settings.raw_database}.{table}", insert_block=data, fmt="JSONEachRow",
                settings=INSERT_SETTINGS | {"insert_deduplication_token": token},
            )
        except DatabaseError as error:
            if not is_data_error(error):
                raise TransientError(str(error)) from error
            lines = data.split(b"\n")
            if len(lines) == 1:
                self._dead_letter(table, data, token, str(error))
                return
            middle = len(lines) // 2
            self._insert(table, b"\n".join(lines[:middle]), f"{token}.a")
            self._insert(table, b"\n".join(lines[middle:]), f"{token}.b")

    def _dead_letter(self, table: str, row: bytes, token: str, reason: str) -> None:
        log.error("row rejected by ClickHouse, moved to dead letters (%s): %s", table, reason[:300])
        entry = {"table": table, "batch": token, "reason": reason[:2000],
                 "at": datetime.now(UTC).isoformat(), "row": row.decode("utf-8", "replace")}
        self.redis.rpush(Keys.dead_letter(table), orjson.dumps(entry))


def dead_letters(connection: redis.Redis, limit: int = 20) -> dict[str, tuple[int, list[dict]]]:
    """Per table: how many rows ClickHouse rejected, and the latest ``limit`` of them."""
    found = {}
    for table in TABLES:
        key = Keys.dead_letter(table)
        entries = [orjson.loads(raw) for raw in connection.lrange(key, -limit, -1)]
        found[table] = (int(connection.llen(key)), entries)
    return found


_lander: Lander | None = None


def land_batch(table: str, batch_id: str) -> str:
    """RQ job: land one claimed batch."""
    global _lander
    if _lander is None:
        settings = get_settings()
        _lander = Lander(settings, redis.Redis.from_url(settings.redis_url))
    return _lander.land(table, batch_id)


class Flusher(threading.Thread):
    """Claims batches from the buffer and (re-)enqueues their landing jobs."""

    def __init__(self, settings: Settings, connection: redis.Redis, queue: Queue) -> None:
        super().__init__(name="trackhouse-flusher", daemon=True)
        self.settings = settings
        self.redis = connection
        self.queue = queue
        self.claim = connection.register_script(CLAIM)
        self.stopping = threading.Event()
        self._quiet_interval = settings.worker_flush_interval_ms / 1000
        self._busy_interval = max(settings.worker_busy_flush_interval_ms / 1000,
                                  self._quiet_interval)
        self._last_flush = dict.fromkeys(TABLES, 0.0)
        self.interval = dict.fromkeys(TABLES, self._quiet_interval)
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
        for table in TABLES:
            lengths.get(Keys.buffered_rows(table))
        for table, length in zip(TABLES, (int(n or 0) for n in lengths.execute()), strict=True):
            waited = now - self._last_flush[table]
            if length >= size or (length and waited >= self.interval[table]):
                # nothing is claimed while too many batches are in flight: then the rows keep
                # waiting and the next tick tries again, so ``waited`` spans their arrival
                claimed = self.flush(table)
                if claimed:
                    self._last_flush[table] = now
                    interval = self.next_interval(claimed, waited, self.interval[table])
                    if interval != self.interval[table]:
                        log.info("%s: %d rows in %.2f s; flushing every %.2f s", table, claimed,
                                 waited, interval)
                    self.interval[table] = interval
        if now - self._last_recovery >= RECOVERY_EVERY_S:
            self.recover()
            self._last_recovery = now

    def next_interval(self, claimed: int, waited: float, current: float) -> float:
        """The wait before a table's next flush: long once rows arrive at the busy rate or
        faster (measured over the last wait, at most the busy interval), short again only
        below half that rate (so a rate near the threshold does not flip it every flush)."""
        rate = claimed / max(min(waited, self._busy_interval), 1e-3)
        busy_rate = self.settings.worker_busy_rows_per_s
        was_busy = current == self._busy_interval > self._quiet_interval
        busy = rate >= (busy_rate / 2 if was_busy else busy_rate)
        return self._busy_interval if busy else self._quiet_interval

    def flush(self, table: str) -> int:
        """Claim batches of ``table`` while there are rows and room in flight."""
        total = 0
        while True:
            batch_id = uuid.uuid4().hex
            lease_until = int(time.time() * 1000) + self.settings.worker_batch_lease_s * 1000
            claimed, left = (int(n) for n in self.claim(
                keys=[Keys.buffer(table), Keys.pending(table), Keys.inflight, Keys.batch(batch_id),
                      Keys.chunk_rows(table), Keys.buffered_rows(table)],
                args=[batch_id, self.settings.worker_batch_size,
                      self.settings.worker_max_inflight_batches, lease_until],
            ))
            if not claimed:
                return total
            self.enqueue(table, batch_id)
            total += claimed
            if not left:
                return total

    def enqueue(self, table: str, batch_id: str) -> None:
        self.queue.enqueue(land_batch, table, batch_id, result_ttl=0, failure_ttl=86_400,
                           job_timeout=600, description=f"land {table} batch {batch_id}")

    def recover(self) -> None:
        """Re-enqueue batches due again: retries whose backoff passed, and batches whose
        worker died (their lease expired and nobody finished them)."""
        now_ms = int(time.time() * 1000)
        lease_ms = self.settings.worker_batch_lease_s * 1000
        for table in TABLES:
            due = self.redis.zrangebyscore(Keys.pending(table), 0, now_ms, start=0, num=100)
            for raw in due:
                batch_id = raw.decode()
                if self.redis.exists(Keys.lease(batch_id)):
                    continue
                self.redis.zadd(Keys.pending(table), {batch_id: now_ms + lease_ms}, xx=True)
                self.enqueue(table, batch_id)


def run_worker(settings: Settings | None = None, *, burst: bool = False) -> None:
    """Run the flusher and an RQ SimpleWorker in this process (until stopped).

    ``burst``: land everything buffered now (and batches due for a retry), then return.
    """
    settings = settings or get_settings()
    connection = redis.Redis.from_url(settings.redis_url)
    queue = Queue(QUEUE_NAME, connection=connection)
    flusher = Flusher(settings, connection, queue)
    worker = SimpleWorker([queue], connection=connection)
    if burst:
        while True:
            claimed = sum(flusher.flush(table) for table in TABLES)
            flusher.recover()
            worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
            if not claimed:
                return
    flusher.start()
    try:
        worker.work(logging_level="WARNING", with_scheduler=False)
    finally:
        flusher.stopping.set()
        flusher.join(5)

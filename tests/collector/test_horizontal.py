"""Horizontal services: two collector processes (each on its own port) and two workers share
one Redis; under load from many concurrent senders one worker is killed -9 while it holds a
batch. Afterwards every sent event is in the raw table exactly once, and each device kept one
live session although its requests went to both collectors at once.

The Redis is private to the test and the raw tables are a scratch database of their own in
the session's warehouse, so the counts are this test's alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from collector_support import TestProject, Worker, root_fixtures, start_worker, wait_until

from collector.buffer import LANES, Keys
from collector.identity import event_id_from_client
from trackhouse.settings import PROJECT_ROOT, Settings
from warehouse.client import warehouse
from warehouse.migrate import migrate

ROOT = root_fixtures()
DEVICES = 64  # distinct visitors (IP addresses), each sending through both collectors
ROUNDS = 6  # requests per device
PER_REQUEST = 20  # events per request
SENDERS = 32  # requests in flight at once


@dataclass
class Horizontal:
    """Two collectors and two workers on one private Redis and a scratch raw database."""

    redis_url: str
    database: str
    env: dict[str, str]
    collectors: list[tuple[subprocess.Popen, str]] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(redis_url=self.redis_url, raw_database=self.database)

    def query(self, sql: str, **parameters: object) -> list[tuple]:
        client = warehouse(self.settings)
        try:
            return client.query(sql, parameters=parameters).result_rows
        finally:
            client.close()


def start_collector(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "trackhouse"), "collector", "--port", str(port),
         "--workers", "1"],
        env=env, cwd=PROJECT_ROOT, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


@pytest.fixture
def horizontal(tmp_path: Path, trackhouse_env, redis_server) -> Iterator[Horizontal]:
    server = ROOT.start_redis(tmp_path / "redis")
    database = f"horizontal_{uuid.uuid4().hex[:8]}"
    redis_url = server.url
    env = {**os.environ, "TRACKHOUSE_REDIS_URL": redis_url, "TRACKHOUSE_RAW_DATABASE": database,
           "TRACKHOUSE_WORKER_BATCH_SIZE": "1000", "TRACKHOUSE_WORKER_BATCH_LEASE_S": "5",
           "TRACKHOUSE_COLLECTOR_RATE_LIMIT_IP": "100000/second"}
    built = Horizontal(redis_url, database, env)
    try:
        # the collectors start while the scratch schema is created (they do not read it)
        for n in range(2):
            port = ROOT.free_port()
            built.collectors.append((start_collector(port, env, tmp_path / f"collector{n}.log"),
                                     f"http://127.0.0.1:{port}"))
        migrate(settings=built.settings)
        for n in range(2):
            built.workers.append(start_worker(tmp_path / f"worker{n}.log", **{
                k: v for k, v in env.items() if k.startswith("TRACKHOUSE_")}))
        for process, url in built.collectors:
            ROOT.wait_for_http(f"{url}/health", 60, process)
        yield built
    finally:
        for worker in built.workers:
            worker.stop()
        for process, _ in built.collectors:
            process.terminate()
            process.wait(20)
        server.process.terminate()
        server.process.wait(10)
        client = warehouse(built.settings)
        client.command(f"drop database if exists {database}")
        client.close()


def holder_pid(connection: redis.Redis, pids: set[int]) -> tuple[int, bytes, bytes] | None:
    """(pid, lease key, batch id) of a batch lease one of ``pids`` holds, if any."""
    for key in connection.scan_iter(Keys.lease("*"), count=1000):
        value = connection.get(key)
        if value is None:
            continue
        pid = int(value.split(b":")[-2])
        if pid in pids:
            return pid, key, value
    return None


async def kill_a_worker_mid_batch(connection: redis.Redis, workers: list[Worker]) -> dict:
    """Stop the worker holding a batch lease, check it still holds it (so its batch is
    half-done), then kill -9 it."""
    pids = {worker.process.pid for worker in workers}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = holder_pid(connection, pids)
        if found is not None:
            pid, key, value = found
            os.kill(pid, signal.SIGSTOP)
            if connection.get(key) == value:
                os.kill(pid, signal.SIGKILL)
                batch = key.decode().rsplit(":", 1)[-1]
                return {"pid": pid, "batch": batch}
            os.kill(pid, signal.SIGCONT)  # it had finished meanwhile: try the next one
        await asyncio.sleep(0.002)
    raise AssertionError("no worker was seen holding a batch")


async def send_load(urls: list[str], project: TestProject) -> tuple[int, int, list[int]]:
    """Every device sends ROUNDS requests of PER_REQUEST events, alternating between the
    collectors, SENDERS at a time; every fifth request is sent again to the other collector
    (a retry). Returns (accepted, duplicates, requests answered per collector)."""
    gate = asyncio.Semaphore(SENDERS)
    served = [0, 0]
    totals = [0, 0]

    async def one(client: httpx.AsyncClient, device: int, round_: int) -> None:
        first = (device * ROUNDS + round_) * PER_REQUEST
        items = [{"type": "track", "payload": {"name": "tick", "properties": {
            "__eventId": f"h-{n}", "n": n}}} for n in range(first, first + PER_REQUEST)]
        headers = project.browser_headers(**{"x-forwarded-for": f"10.7.{device // 250}."
                                                                  f"{device % 250 + 1}"})
        targets = [(device + round_) % 2]
        if round_ % 5 == 0:
            targets.append(1 - targets[0])
        for target in targets:
            async with gate:
                answer = await client.post(f"{urls[target]}/track/batch", json=items,
                                           headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            served[target] += 1
            totals[0] += body["accepted"]
            totals[1] += body["duplicates"]

    limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(one(client, device, round_) for round_ in range(ROUNDS)
                               for device in range(DEVICES)))
    return totals[0], totals[1], served


async def load_and_kill(horizontal: Horizontal, project: TestProject) -> tuple[tuple, dict]:
    connection = redis.Redis.from_url(horizontal.redis_url)
    killer = asyncio.create_task(kill_a_worker_mid_batch(connection, horizontal.workers))
    sent = await send_load([url for _, url in horizontal.collectors], project)
    killed = await killer
    return sent, killed


def test_two_collectors_two_workers_one_killed(horizontal: Horizontal,
                                                fresh_project: TestProject) -> None:
    project_id = fresh_project.project_id
    connection = redis.Redis.from_url(horizontal.redis_url)
    # both workers past their start-up check: their landing loops are registered in Redis
    from rq import Worker as RqWorker
    wait_until(lambda: len(RqWorker.all(connection=connection)) >= 4, timeout_s=60,
               message="both workers started")
    started = time.monotonic()
    (accepted, duplicates, served), killed = asyncio.run(load_and_kill(horizontal,
                                                                       fresh_project))
    sent_for = time.monotonic() - started
    expected = DEVICES * ROUNDS * PER_REQUEST
    retried = DEVICES * ((ROUNDS + 4) // 5) * PER_REQUEST
    assert (accepted, duplicates) == (expected, retried)
    assert min(served) > 0.4 * sum(served)  # both collectors took their share
    victim = next(w for w in horizontal.workers if w.process.pid == killed["pid"])
    assert victim.process.wait(10) == -signal.SIGKILL

    def landed() -> bool:
        rows = horizontal.query(f"select count() from {horizontal.database}.events "
                                "where project_id = {p:String}", p=project_id)
        return rows[0][0] >= expected and not any(
            connection.zcard(Keys.pending(lane)) for lane in LANES)

    # the killed worker's batch waits out its lease (5 s), then the other worker lands it
    wait_until(landed, timeout_s=90, every_s=0.25, message="every event landed")
    assert not connection.exists(Keys.batch(killed["batch"]))
    assert int(connection.get(Keys.inflight) or 0) == 0
    assert all(int(connection.get(Keys.buffered_rows(lane)) or 0) == 0 for lane in LANES)

    ids = horizontal.query(f"select toString(id), count() from {horizontal.database}.events "
                           "where project_id = {p:String} group by id", p=project_id)
    want = {event_id_from_client(project_id, f"h-{n}") for n in range(expected)}
    assert {row[0] for row in ids} == want  # nothing lost, nothing foreign
    assert max(row[1] for row in ids) == 1  # nothing doubled

    # each device's events (sent through both collectors concurrently) share one session
    sessions = horizontal.query(
        f"select device_id, uniqExact(session_id), count() from {horizontal.database}.events "
        "where project_id = {p:String} group by device_id", p=project_id)
    assert len(sessions) == DEVICES
    assert {(row[1], row[2]) for row in sessions} == {(1, ROUNDS * PER_REQUEST)}
    print(f"\n{expected} events from {DEVICES} devices through 2 collectors "
          f"({served[0]}+{served[1]} requests), sent in {sent_for:.1f} s; worker "
          f"{killed['pid']} killed holding batch {killed['batch']}; all landed once")


def test_a_due_batch_is_reenqueued_by_one_flusher(tmp_path: Path, trackhouse_env) -> None:
    """Every worker's flusher looks for due batches once a second; one of them, not each,
    enqueues a landing job for a batch whose lander died."""
    from rq import Queue

    from collector.worker import Flusher

    server = ROOT.start_redis(tmp_path / "redis")
    try:
        connection = redis.Redis.from_url(server.url)
        queue = Queue("test-recover", connection=connection)
        flushers = [Flusher(Settings(redis_url=server.url), connection, queue) for _ in range(3)]
        pending = Keys.pending("events")
        now_ms = time.time() * 1000
        connection.zadd(pending, {"dead-lander": 0, "being-landed": 0,
                                  "not-due-yet": now_ms + 60_000})
        connection.set(Keys.lease("being-landed"), "host:1:abc")
        # the flushers of three workers look at the same moment: each finds both due...
        found = [flusher.due(int(now_ms)) for flusher in flushers]
        assert all(sorted(due) == [("events", "being-landed"), ("events", "dead-lander")]
                   for due in found)
        # ...and one of them takes the dead lander's batch; nobody takes the one being landed
        taken = [flusher.take(lane, batch, int(now_ms)) for flusher, due in zip(
            flushers, found, strict=True) for lane, batch in sorted(due)]
        assert taken.count(True) == 1
        assert connection.zscore(pending, "dead-lander") > now_ms  # due again a lease later
        assert connection.zscore(pending, "being-landed") == 0
        # the whole round, as the flushers run it: one landing job
        connection.zadd(pending, {"dead-lander": 0})
        for flusher in flushers:
            flusher.recover()
        assert [job.args for job in queue.get_jobs()] == [("events", "dead-lander")]
    finally:
        server.process.terminate()
        server.process.wait(10)

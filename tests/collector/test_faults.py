"""Faults: a worker killed mid-batch, the warehouse down for a while, Redis restarted with
persistence. Each test runs its own Redis and warehouse; afterwards every accepted event is
in ClickHouse exactly once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from collector_support import (
    TestProject,
    Worker,
    launch_redis,
    make_client,
    root_fixtures,
    start_worker,
    wait_until,
)
from fastapi.testclient import TestClient
from rq import Worker as RqWorker

from collector.buffer import LANES, Keys
from trackhouse.settings import Settings
from warehouse.client import warehouse
from warehouse.migrate import migrate

pytestmark = pytest.mark.embedded_only
ROOT = root_fixtures()


@dataclass
class Stack:
    """A private Redis (AOF, fsync always) and a private embedded warehouse."""

    redis_port: int
    redis_dir: Path
    redis_process: object
    house: object  # conftest.EmbeddedWarehouse
    tmp: Path

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def settings(self) -> Settings:
        return Settings(redis_url=self.redis_url, clickhouse_url=self.house.url)

    def api(self) -> TestClient:
        return make_client(redis_url=self.redis_url, clickhouse_url=self.house.url)

    def worker(self, name: str, **env: str) -> Worker:
        return start_worker(self.tmp / f"{name}.log", TRACKHOUSE_REDIS_URL=self.redis_url,
                            TRACKHOUSE_CLICKHOUSE_URL=self.house.url, **env)

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port)

    def count(self, project_id: str) -> tuple[int, int]:
        client = warehouse(self.settings)
        try:
            rows = client.query("select count(), uniqExact(id) from trackhouse.events "
                                "where project_id = {p:String}", parameters={"p": project_id})
            return int(rows.result_rows[0][0]), int(rows.result_rows[0][1])
        finally:
            client.close()


@pytest.fixture
def stack(tmp_path: Path, trackhouse_env) -> Iterator[Stack]:
    port = ROOT.free_port()
    redis_dir = tmp_path / "redis"
    process = launch_redis(port, redis_dir, "--appendonly", "yes", "--appendfsync", "always")
    house = ROOT.EmbeddedWarehouse(host="127.0.0.1", port=ROOT.free_port(),
                                   data_dir=tmp_path / "warehouse",
                                   log_path=tmp_path / "warehouse.log", env={**os.environ})
    house.start()
    built = Stack(port, redis_dir, process, house, tmp_path)
    migrate(settings=built.settings)
    try:
        yield built
    finally:
        house.stop()
        if built.redis_process.poll() is None:
            built.redis_process.kill()
            built.redis_process.wait()


def send(api: TestClient, project: TestProject, first: int, last: int, *,
         importing: bool = False) -> int:
    """Events first..last-1 in batches of 250 (live, or a history import through the secret
    client); returns how many were accepted."""
    accepted = 0
    path, headers = (("/track/batch?import=true", project.server_headers()) if importing else
                     ("/track/batch", project.browser_headers()))
    for start in range(first, last, 250):
        items = [{"type": "track", "payload": {"name": "tick", "properties": {
            "__eventId": f"tick-{n}", "n": n}}} for n in range(start, min(last, start + 250))]
        answer = api.post(path, json=items, headers=headers)
        assert answer.status_code == 200, answer.text
        accepted += answer.json()["accepted"]
    return accepted


def test_worker_killed_mid_batch(stack: Stack, fresh_project: TestProject) -> None:
    """Live events and an import, both being landed (each by its own loop) when the worker is
    killed."""
    settings = {"TRACKHOUSE_WORKER_BATCH_SIZE": "1000", "TRACKHOUSE_WORKER_BATCH_LEASE_S": "5"}
    first = stack.worker("first", **settings)
    connection = stack.redis()
    # past its start-up check of the raw schema: its landing loops are registered in Redis
    wait_until(lambda: len(RqWorker.all(connection=connection)) >= 2, message="worker started")
    # freeze the warehouse so the worker's insert hangs, then kill -9 the worker mid-insert
    stack.house.process.send_signal(signal.SIGSTOP)
    with stack.api() as api:
        accepted = (send(api, fresh_project, 0, 1500) +
                    send(api, fresh_project, 1500, 3000, importing=True))
    assert accepted == 3000
    wait_until(lambda: connection.keys(Keys.lease("*")), message="a batch being landed")
    time.sleep(0.5)
    first.stop(signal.SIGKILL)
    stack.house.process.send_signal(signal.SIGCONT)
    # the dead worker's batch may or may not have been stored by the warehouse: the next
    # worker lands it again after the lease, with the same deduplication token
    second = stack.worker("second", **settings)
    try:
        wait_until(lambda: stack.count(fresh_project.project_id)[0] >= 3000 and not any(
                   connection.zcard(Keys.pending(lane)) for lane in LANES), timeout_s=60,
                   message="every event landed")
        time.sleep(1.0)  # nothing more may arrive
        assert stack.count(fresh_project.project_id) == (3000, 3000)
        assert int(connection.get(Keys.inflight) or 0) == 0
    finally:
        second.stop()


def test_warehouse_down_for_a_while_and_back(stack: Stack, fresh_project: TestProject) -> None:
    worker = stack.worker("worker")
    try:
        with stack.api() as api:
            assert send(api, fresh_project, 0, 500) == 500
            wait_until(lambda: stack.count(fresh_project.project_id)[0] == 500,
                       message="first events landed")
            stack.house.stop()
            # the collector never waits on ClickHouse: it keeps accepting
            started = time.monotonic()
            assert send(api, fresh_project, 500, 1500) == 1000
            assert time.monotonic() - started < 10
            ready = api.get("/ready")
            assert ready.status_code == 503 and ready.json()["clickhouse"].startswith("error")
            wait_until(lambda: b"not landed" in worker.log_path.read_bytes(),
                       message="the worker retrying")
            time.sleep(2)
            stack.house.start()
            wait_until(lambda: stack.count(fresh_project.project_id)[0] >= 1500, timeout_s=60,
                       message="the backlog landed after the warehouse came back")
            assert stack.count(fresh_project.project_id) == (1500, 1500)
            assert api.get("/ready").status_code == 200
    finally:
        worker.stop()


def test_redis_restarted_with_persistence(stack: Stack, fresh_project: TestProject) -> None:
    with stack.api() as api:
        assert send(api, fresh_project, 0, 1000) == 1000
    connection = stack.redis()
    assert int(connection.get(Keys.buffered_rows("events")) or 0) >= 1000
    stack.redis_process.kill()  # kill -9: only the append-only file survives
    stack.redis_process.wait()
    stack.redis_process = launch_redis(stack.redis_port, stack.redis_dir, "--appendonly", "yes",
                                       "--appendfsync", "always")
    with stack.api() as api:
        # the accepted ids survived too: the SDK's retries after the restart are duplicates
        assert send(api, fresh_project, 900, 1200) == 200
    worker = stack.worker("worker")
    try:
        wait_until(lambda: stack.count(fresh_project.project_id)[0] >= 1200, timeout_s=60,
                   message="events buffered before the restart landed")
        time.sleep(1.0)
        assert stack.count(fresh_project.project_id) == (1200, 1200)
    finally:
        worker.stop()

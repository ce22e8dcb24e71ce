"""Fixtures of the collector tests: the private Redis and warehouse of the session, a test
project with clients in the metadata database, the app in-process, a worker subprocess."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from collector_support import TestProject, Worker, make_client, make_project, start_worker
from fastapi.testclient import TestClient

from trackhouse.settings import get_settings


@pytest.fixture(scope="session", autouse=True)
def generous_failed_auth_limits() -> Iterator[None]:
    """Every test here sends from 127.0.0.1 into one Redis: a session's worth of refused
    requests (the fuzzing's above all) would put that address over the default limit of
    failed authentication and refuse the next test's first request. test_auth_flood sets
    small limits of its own."""
    previous = os.environ.get("TRACKHOUSE_COLLECTOR_FAILED_AUTH_LIMIT_IP")
    os.environ["TRACKHOUSE_COLLECTOR_FAILED_AUTH_LIMIT_IP"] = "100000/minute"
    get_settings.cache_clear()
    yield
    if previous is None:
        os.environ.pop("TRACKHOUSE_COLLECTOR_FAILED_AUTH_LIMIT_IP", None)
    else:
        os.environ["TRACKHOUSE_COLLECTOR_FAILED_AUTH_LIMIT_IP"] = previous
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def project(redis_server) -> TestProject:
    return make_project()


@pytest.fixture
def fresh_project(redis_server) -> TestProject:
    return make_project()


@pytest.fixture
def redis_client(redis_server) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def api(redis_server) -> Iterator[TestClient]:
    with make_client() as client:
        yield client


@pytest.fixture
def make_api(redis_server) -> Iterator[Callable[..., TestClient]]:
    """Build apps with overridden settings (closed at the end of the test)."""
    opened: list[TestClient] = []

    def factory(**overrides: object) -> TestClient:
        client = make_client(**overrides)
        client.__enter__()
        opened.append(client)
        return client

    yield factory
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def worker(redis_server, migrated, tmp_path: Path) -> Iterator[Worker]:
    running = start_worker(tmp_path / "worker.log")
    yield running
    running.stop()

"""Fixtures of the warehouse tests: clients on the test warehouse and throwaway databases."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client

from trackhouse.settings import PROJECT_ROOT, get_settings
from warehouse.client import warehouse


@pytest.fixture
def make_client() -> Iterator[Callable[..., Client]]:
    """Build clickhouse-connect clients through the project's one client function."""
    clients: list[Client] = []

    def build(**kwargs: Any) -> Client:
        client = warehouse(**kwargs)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def scratch_db(ch: Client) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards."""
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    ch.command(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        ch.command(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def credentials() -> tuple[str, str]:
    settings = get_settings()
    return settings.clickhouse_user, settings.clickhouse_password.get_secret_value()


@pytest.fixture
def private_warehouse(tmp_path: Path, pytestconfig: pytest.Config) -> Iterator[Callable[..., Any]]:
    """Start extra embedded warehouses (own port, data dir and settings) for one test."""
    # tests/conftest.py is registered under its path; its helpers start the process.
    root = pytestconfig.pluginmanager.get_plugin(str(PROJECT_ROOT / "tests" / "conftest.py"))
    started: list[Any] = []

    def start(data_dir: Path | None = None, **settings: str) -> Any:
        env = {k: v for k, v in os.environ.items() if k != "TRACKHOUSE_CLICKHOUSE_URL"}
        env.update({f"TRACKHOUSE_{k.upper()}": v for k, v in settings.items()})
        instance = root.EmbeddedWarehouse(
            host="127.0.0.1",
            port=root.free_port(),
            data_dir=data_dir or tmp_path / "data",
            log_path=tmp_path / f"server-{len(started)}.log",
            env=env,
        )
        instance.start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop(sig=signal.SIGKILL)


def http_get(instance_url: str, sql: str, **params: str) -> httpx.Response:
    settings = get_settings()
    credentials = (settings.clickhouse_user, settings.clickhouse_password.get_secret_value())
    return httpx.post(instance_url, params=params, content=sql.encode(), timeout=30,
                      auth=credentials)

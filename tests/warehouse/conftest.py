"""Fixtures of the warehouse tests: clients on the test warehouse and throwaway databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from trackhouse.settings import get_settings
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

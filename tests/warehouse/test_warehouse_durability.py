"""Acknowledged inserts survive kill -9; SIGTERM shuts down cleanly. Embedded process only."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest

pytestmark = pytest.mark.embedded_only

TABLE = "durable.acked"


def sql(instance: Any, statement: str) -> str:
    response = httpx.post(instance.url, content=statement.encode(), timeout=30,
                          headers=instance.auth_headers)
    assert response.status_code == 200, response.text
    return response.text


def test_acknowledged_inserts_survive_kill_9(
    private_warehouse: Callable[..., Any], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    instance = private_warehouse(data_dir)
    sql(instance, "CREATE DATABASE durable")
    sql(
        instance, f"CREATE TABLE {TABLE} (batch UInt32, i UInt32) ENGINE = MergeTree ORDER BY batch"
    )
    acknowledged: list[int] = []

    for cycle in range(2):
        stop = threading.Event()

        def write(
            instance: Any = instance, cycle: int = cycle, stop: threading.Event = stop
        ) -> None:
            # A plain client of the private instance (the project's client targets the
            # session warehouse).
            client = clickhouse_connect.get_client(host=instance.host, port=instance.port,
                                                   password=instance.password)
            batch = cycle * 100_000
            try:
                while not stop.is_set():
                    client.insert(
                        TABLE, [[batch, i] for i in range(200)], column_names=["batch", "i"]
                    )
                    acknowledged.append(batch)  # only after the server said OK
                    batch += 1
            except Exception:
                return  # the server died mid-insert: that batch was never acknowledged

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(1.5)
        instance.stop(sig=signal.SIGKILL)
        stop.set()
        writer.join(30)
        assert acknowledged, "the writer never got an insert through"
        instance.start()
        present = set(map(int, sql(instance, f"SELECT DISTINCT batch FROM {TABLE}").split()))
        assert set(acknowledged) <= present
        counts = sql(instance, f"SELECT batch, count() FROM {TABLE} GROUP BY batch").splitlines()
        assert all(line.split("\t")[1] == "200" for line in counts), "a batch was stored in part"


def test_sigterm_shuts_down_cleanly(private_warehouse: Callable[..., Any], tmp_path: Path) -> None:
    instance = private_warehouse(tmp_path / "data")
    sql(instance, "CREATE TABLE default.kept (x UInt8) ENGINE = MergeTree ORDER BY x")
    sql(instance, "INSERT INTO default.kept VALUES (1), (2), (3)")
    process = instance.process
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    instance.process = None
    instance.start()
    assert sql(instance, "SELECT sum(x) FROM default.kept") == "6\n"

"""Shared fixtures: a real warehouse and a private Redis for the whole test session.

The warehouse is the embedded endpoint (``trackhouse warehouse``) started on a free port with
a temporary data directory, unless ``TRACKHOUSE_CLICKHOUSE_URL`` names a real ClickHouse
server: then every test runs against that server, and tests that need the embedded process
(mark ``embedded_only``) skip themselves there, and only there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from support import free_port, wait_for_http

from trackhouse.secure_files import read_or_create_secret
from trackhouse.settings import PROJECT_ROOT, Settings, get_settings

EXTERNAL_CLICKHOUSE_URL = os.environ.get("TRACKHOUSE_CLICKHOUSE_URL")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "embedded_only: needs the embedded warehouse process (skipped on a real server)"
    )


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist with ``--dist loadscope`` (scripts/test.sh), a scope is a folder of
    tests/: each folder runs in one worker, so its session fixtures (built marts, a running
    app) are made once, as in one process. (``--dist loadgroup`` would do it with marks, but
    pytest-xdist 3.8 renames test ids in a way pytest 9.2 ignores.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FolderScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            parts = nodeid.split("::", 1)[0].split("/")
            return "/".join(parts[:2]) if len(parts) > 2 else parts[0]

    return FolderScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not EXTERNAL_CLICKHOUSE_URL:
        return
    skip = pytest.mark.skip(reason="needs the embedded warehouse; TRACKHOUSE_CLICKHOUSE_URL is set")
    for item in items:
        if "embedded_only" in item.keywords:
            item.add_marker(skip)


@dataclass
class EmbeddedWarehouse:
    """A running ``trackhouse warehouse`` process the tests own."""

    host: str
    port: int
    data_dir: Path
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    password: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"X-ClickHouse-User": "default", "X-ClickHouse-Key": self.password}

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the process with the password it would take by itself: the configured one,
        or the one generated into the data directory of ``env`` (created here if missing,
        so the caller knows it before the process runs)."""
        if not self.password:
            self.password = self.env.get("TRACKHOUSE_CLICKHOUSE_PASSWORD") or (
                read_or_create_secret(Path(self.env.get(
                    "TRACKHOUSE_DATA_DIR", Settings.model_fields["data_dir"].default
                )) / "warehouse-password")
            )
        self.env = {**self.env, "TRACKHOUSE_CLICKHOUSE_PASSWORD": self.password}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "trackhouse"), "warehouse", "--host", self.host,
             "--port", str(self.port), "--data-dir", str(self.data_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=PROJECT_ROOT,
        )
        wait_for_http(f"{self.url}/ping", timeout_s, self.process)

    def stop(self, sig: int = 15, timeout_s: float = 30.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TRACKHOUSE_DATA_DIR of the session (metadata database, the warehouse's password)."""
    return tmp_path_factory.mktemp("trackhouse-data")


@pytest.fixture(scope="session")
def embedded_warehouse(
    tmp_path_factory: pytest.TempPathFactory, session_data_dir: Path
) -> Iterator[EmbeddedWarehouse | None]:
    """The session's embedded warehouse process (None when TRACKHOUSE_CLICKHOUSE_URL is set)."""
    if EXTERNAL_CLICKHOUSE_URL:
        yield None
        return
    root = tmp_path_factory.mktemp("warehouse")
    embedded = EmbeddedWarehouse(
        host="127.0.0.1", port=free_port(), data_dir=root / "data", log_path=root / "server.log",
        env={**os.environ, "TRACKHOUSE_DATA_DIR": str(session_data_dir)},
    )
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def warehouse_url(embedded_warehouse: EmbeddedWarehouse | None) -> str:
    """URL of the ClickHouse HTTP endpoint every test talks to."""
    if embedded_warehouse is None:
        return str(EXTERNAL_CLICKHOUSE_URL).rstrip("/")
    return embedded_warehouse.url


@pytest.fixture(scope="session", autouse=True)
def trackhouse_env(
    warehouse_url: str, embedded_warehouse: EmbeddedWarehouse | None, session_data_dir: Path
) -> Iterator[None]:
    """Point the settings of this process (and of subprocesses it starts) at the test services:
    the embedded warehouse's generated password too (tests give processes data directories of
    their own)."""
    previous = dict(os.environ)
    os.environ["TRACKHOUSE_CLICKHOUSE_URL"] = warehouse_url
    os.environ["TRACKHOUSE_DATA_DIR"] = str(session_data_dir)
    if embedded_warehouse is not None:
        os.environ["TRACKHOUSE_CLICKHOUSE_PASSWORD"] = embedded_warehouse.password
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "False"
    os.environ["DO_NOT_TRACK"] = "1"
    # login guessing's delays (1, 2, 4, 8 s) scaled down: the doubling is checked, not waited out
    os.environ["TRACKHOUSE_LOGIN_FIRST_DELAY_MS"] = "500"
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(previous)
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def migrated(trackhouse_env: None) -> None:
    """The raw schema, applied once per session."""
    from warehouse.migrate import migrate

    migrate()


@pytest.fixture
def ch(trackhouse_env: None):
    """A clickhouse-connect client on the test warehouse (the project's one client function)."""
    from warehouse.client import warehouse

    client = warehouse()
    try:
        yield client
    finally:
        client.close()


@dataclass
class RedisServer:
    port: int
    data_dir: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(data_dir: Path, *extra_args: str) -> RedisServer:
    """Start a private redis-server on a free port (e.g. with ``--appendonly yes``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; run scripts/bootstrap.sh")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
         "--save", "", "--appendonly", "no", *extra_args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.05)
    return RedisServer(port=port, data_dir=data_dir, process=process)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis for the session (never the machine's shared one)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    previous = os.environ.get("TRACKHOUSE_REDIS_URL")
    os.environ["TRACKHOUSE_REDIS_URL"] = server.url
    get_settings.cache_clear()
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(10)
        if previous is None:
            os.environ.pop("TRACKHOUSE_REDIS_URL", None)
        else:
            os.environ["TRACKHOUSE_REDIS_URL"] = previous
        get_settings.cache_clear()

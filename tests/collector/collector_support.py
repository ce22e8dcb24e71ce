"""Helpers of the collector tests: a test project with clients, the app in-process, worker
subprocesses, polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
from fastapi.testclient import TestClient
from support import wait_until

from trackhouse.settings import PROJECT_ROOT, Settings, get_settings

UA_CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
UA_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
UA_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36"
)
UA_GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
ORIGIN = "https://shop.example.com"


@dataclass
class TestProject:
    __test__ = False  # not a test class

    project_id: str
    browser_client: str  # write client without secret (checked by Origin)
    server_client: str  # write client with secret
    secret: str
    read_client: str
    read_secret: str
    plausible_domain: str = ""
    umami_website_id: str = ""

    def browser_headers(self, **extra: str) -> dict[str, str]:
        return {"openpanel-client-id": self.browser_client, "origin": ORIGIN,
                "user-agent": UA_CHROME_WINDOWS, **extra}

    def server_headers(self, **extra: str) -> dict[str, str]:
        return {"openpanel-client-id": self.server_client,
                "openpanel-client-secret": self.secret, "user-agent": UA_CHROME_WINDOWS, **extra}


def make_project(project_id: str | None = None, origin: str = ORIGIN, *,
                 trackers: bool = False) -> TestProject:
    """A project with a browser client (sending from ``origin``), a secret write client and a
    read client (and, with ``trackers``, a Plausible domain and an Umami website id of its
    own)."""
    from accounts import service
    from accounts.db import session_scope, upgrade

    upgrade()
    project_id = project_id or f"ct-{uuid.uuid4().hex[:10]}"
    compat = {"plausible_domain": f"{project_id}.example.com",
              "umami_website_id": str(uuid.uuid4())} if trackers else {}
    with session_scope() as session:
        service.create_project(session, name=project_id, domain="shop.example.com",
                               project_id=project_id, allowed_origins=[origin], mirror=False,
                               **compat)
        browser, _ = service.create_client(session, project_id=project_id, with_secret=False)
        server, secret = service.create_client(session, project_id=project_id)
        read, read_secret = service.create_client(session, project_id=project_id, type="read")
        ids = browser.id, server.id, read.id
    assert secret and read_secret
    return TestProject(project_id, ids[0], ids[1], secret, ids[2], read_secret, **compat)


def make_client(**overrides: object) -> TestClient:
    """The collector app in-process (real Redis, real metadata database), settings overridden.

    The test client's peer is 127.0.0.1, a trusted proxy by default, so tests set the visitor
    IP with ``x-forwarded-for``.
    """
    from collector.main import create_app

    settings = Settings(**overrides) if overrides else get_settings()  # type: ignore[arg-type]
    # base_url: the collector's non-ingestion routes answer loopback names only
    return TestClient(create_app(settings), client=("127.0.0.1", 50000),
                      base_url="http://127.0.0.1")


def buffered(connection: redis.Redis) -> int:
    """Rows waiting in the buffer (every lane)."""
    from collector.buffer import LANES, Keys

    return sum(int(connection.get(Keys.buffered_rows(lane)) or 0) for lane in LANES)


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_worker(log_path: Path, **env_overrides: str) -> Worker:
    """A ``trackhouse worker`` subprocess with this session's settings (and overrides)."""
    env = {**os.environ, "TRACKHOUSE_WORKER_FLUSH_INTERVAL_MS": "100", **env_overrides}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "trackhouse"), "worker"],
        env=env, cwd=PROJECT_ROOT, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
    )
    return Worker(process, log_path)


def root_fixtures():
    """The shared test helpers of tests/conftest.py (EmbeddedWarehouse, free_port, ...).

    Loaded by path: inside this folder the name ``conftest`` is this folder's conftest.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "trackhouse_root_conftest", PROJECT_ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def launch_redis(port: int, data_dir: Path, *extra: str) -> subprocess.Popen:
    """A private redis-server on ``port`` (to restart one on the port it had)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
         "--save", "", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    wait_until(lambda: _pings(client), timeout_s=10, every_s=0.05, message="redis answers")
    client.close()
    return process


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False

"""Support for the client tests: the Python SDK on the path, a scripted HTTP endpoint for
the SDK's delivery logic, the test site's server, and the real stack (collector and worker
subprocesses, projects with clients, ClickHouse polling)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
from support import free_port, local_http_server

ROOT = Path(__file__).resolve().parents[2]
# The SDK is its own distribution (sdk/python, `pip install ./sdk/python`); import it in place.
SDK_PATH = ROOT / "sdk" / "python"
if str(SDK_PATH) not in sys.path:
    sys.path.insert(0, str(SDK_PATH))


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ScriptedEndpoint:
    """A local HTTP server that answers with scripted statuses, then 200, recording requests.

    Only for the SDK's own delivery logic (batching, retries, backoff, shutdown); everything
    about what the collector does with the events is tested against the real collector.
    """

    url: str
    statuses: list[int] = field(default_factory=list)
    # builds the JSON answer from the decoded request body (default: {"accepted": ...})
    answer: Callable[[Any], Any] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m for r in self.requests for m in r.json()]


@contextmanager
def serve_scripted_endpoint() -> Iterator[ScriptedEndpoint]:
    endpoint: ScriptedEndpoint

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with endpoint.lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                endpoint.requests.append(RecordedRequest(self.path, headers, body))
                status = endpoint.statuses.pop(0) if endpoint.statuses else 200
            reply = endpoint.answer(json.loads(body)) if endpoint.answer else {"ok": status == 200}
            answer = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with local_http_server(Handler) as url:
        endpoint = ScriptedEndpoint(url=url)
        yield endpoint


SITE_DIR = Path(__file__).resolve().parent / "site"
SITE_CLIENTS = ("ours", "openpanel", "plausible", "umami")


@dataclass
class SiteServer:
    """The small test site: /<client>/... serves <client>.html (an SPA: every route is the
    same page), /site/ its script, /vendor/ the npm clients."""

    url: str
    placeholders: dict[str, dict[str, str]]  # per client: {"__API_URL__": ..., ...}

    @property
    def origin(self) -> str:
        return self.url


@contextmanager
def serve_site(vendor: dict[str, Path], placeholders: dict[str, dict[str, str]]
               ) -> Iterator[SiteServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            client = path.strip("/").split("/")[0]
            if path.startswith("/site/") and (SITE_DIR / path[6:]).is_file():
                self._send(200, (SITE_DIR / path[6:]).read_bytes(), "text/javascript")
            elif path.startswith("/vendor/") and path[8:] in vendor:
                self._send(200, vendor[path[8:]].read_bytes(), "text/javascript")
            elif client in SITE_CLIENTS:
                html = (SITE_DIR / f"{client}.html").read_text()
                for key, value in placeholders.get(client, {}).items():
                    html = html.replace(key, value)
                self._send(200, html.encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.send_header("cache-control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with local_http_server(Handler) as url:
        yield SiteServer(url=url, placeholders=placeholders)


# --------------------------------------------------------------------------------------
# the real stack: collector and worker subprocesses, projects, ClickHouse polling
# --------------------------------------------------------------------------------------

DESKTOP_CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)


@dataclass
class ClientProject:
    """A project with a browser client (Origin-checked) and a server client (secret)."""

    project_id: str
    browser_client: str
    server_client: str
    secret: str
    plausible_domain: str
    umami_website_id: str


def make_client_project(origin: str, label: str) -> ClientProject:
    from accounts import service
    from accounts.db import session_scope

    project_id = f"{label}-{uuid.uuid4().hex[:8]}"
    plausible_domain = f"{project_id}.example.com"
    umami_website_id = str(uuid.uuid4())
    with session_scope() as session:
        service.create_project(
            session, name=project_id, project_id=project_id, domain=plausible_domain,
            allowed_origins=[origin], plausible_domain=plausible_domain,
            umami_website_id=umami_website_id, mirror=False,
        )
        browser, _ = service.create_client(session, project_id=project_id, with_secret=False)
        server, secret = service.create_client(session, project_id=project_id)
        ids = browser.id, server.id
    assert secret is not None
    return ClientProject(project_id, ids[0], ids[1], secret, plausible_domain, umami_website_id)


class Stack:
    """``trackhouse collector`` and ``trackhouse worker`` subprocesses on the test services."""

    def __init__(self, log_dir: Path) -> None:
        from trackhouse.settings import PROJECT_ROOT

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        trackhouse = str(Path(sys.executable).parent / "trackhouse")
        env = {**os.environ, "TRACKHOUSE_WORKER_FLUSH_INTERVAL_MS": "100"}
        log_dir.mkdir(parents=True, exist_ok=True)
        self.logs = {"collector": log_dir / "collector.log", "worker": log_dir / "worker.log"}
        self.processes = [
            subprocess.Popen(
                [trackhouse, "collector", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, cwd=PROJECT_ROOT, stdout=self.logs["collector"].open("ab"),
                stderr=subprocess.STDOUT),
            subprocess.Popen(
                [trackhouse, "worker"], env=env, cwd=PROJECT_ROOT,
                stdout=self.logs["worker"].open("ab"), stderr=subprocess.STDOUT),
        ]

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process, name in zip(self.processes, self.logs, strict=True):
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.logs[name].read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the collector did not answer within {timeout_s} s")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def query_rows(sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows as dicts, read with the project's one warehouse client."""
    from warehouse.client import warehouse

    client = warehouse()
    try:
        result = client.query(sql, parameters=parameters)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    finally:
        client.close()


def wait_for_rows(sql: str, parameters: dict[str, Any], count: int, timeout_s: float = 30.0,
                  settle_s: float = 1.0) -> list[dict[str, Any]]:
    """Poll until the query returns at least ``count`` rows, then once more after
    ``settle_s`` so that rows which should NOT be there (duplicates) have had time to land."""
    deadline = time.monotonic() + timeout_s
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = query_rows(sql, parameters)
        if len(rows) >= count:
            time.sleep(settle_s)
            return query_rows(sql, parameters)
        time.sleep(0.2)
    raise AssertionError(f"expected {count} rows, got {len(rows)} within {timeout_s} s: {rows}")

"""Support for the client tests: the Python SDK on the path, a scripted HTTP endpoint."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint = ScriptedEndpoint(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


SITE_DIR = Path(__file__).resolve().parent / "site"
SITE_CLIENTS = ("ours", "openpanel", "plausible", "umami")


@dataclass
class TestSite:
    """The small test site: /<client>/... serves <client>.html (an SPA: every route is the
    same page), /site/ its script, /vendor/ the npm clients."""

    url: str
    placeholders: dict[str, dict[str, str]]  # per client: {"__API_URL__": ..., ...}

    @property
    def origin(self) -> str:
        return self.url


@contextmanager
def serve_site(vendor: dict[str, Path], placeholders: dict[str, dict[str, str]]
               ) -> Iterator[TestSite]:
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TestSite(url=f"http://127.0.0.1:{server.server_address[1]}",
                       placeholders=placeholders)
    finally:
        server.shutdown()
        server.server_close()

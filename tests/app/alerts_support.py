"""A local SMTP server (aiosmtpd) and a local webhook receiver (http.server in a thread),
started by the alert and report tests, and pointing the settings at them."""

from __future__ import annotations

import email
import email.policy
import http.server
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

import orjson
import pytest
from aiosmtpd.controller import Controller
from support import free_port as free_port
from support import local_http_server


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd)
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"


@contextmanager
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    from trackhouse.settings import get_settings

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("TRACKHOUSE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TRACKHOUSE_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("TRACKHOUSE_SMTP_STARTTLS", "false")
    monkeypatch.setenv("TRACKHOUSE_SMTP_FROM", "alerts@trackhouse.test")
    get_settings.cache_clear()
    try:
        yield inbox
    finally:
        controller.stop()
        get_settings.cache_clear()


@dataclass
class Webhook:
    url: str
    received: list[dict] = field(default_factory=list)
    failures_left: int = 0  # answer 500 this many times first


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if hook.failures_left:
                hook.failures_left -= 1
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"receiver down")
                return
            hook.received.append(orjson.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    with local_http_server(Handler) as url:
        hook.url = f"{url}/hook"
        yield hook

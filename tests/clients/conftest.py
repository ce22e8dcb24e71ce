"""Fixtures for the client tests (tracker, OpenPanel/Plausible/Umami clients, Python SDK).

The browser tests run the real stack: ``trackhouse collector`` and ``trackhouse worker``
subprocesses on the session's warehouse and private Redis, Debian's chromium driven by
Playwright, and a small local test site whose pages load each client.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from clients_support import (
    ScriptedEndpoint,
    SiteServer,
    Stack,
    serve_scripted_endpoint,
    serve_site,
)
from npm_clients import NpmClients, ensure_npm_clients

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture
def scripted_endpoint() -> Iterator[ScriptedEndpoint]:
    with serve_scripted_endpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def stack(redis_server: Any, migrated: None, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    """The collector and the worker, per module: a worker left running would land events
    that later test modules (the collector's) expect to stay in the buffer."""
    from accounts.db import upgrade

    upgrade()
    running = Stack(tmp_path_factory.mktemp("clients-stack"))
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def npm_clients() -> NpmClients:
    return ensure_npm_clients()


@pytest.fixture(scope="session")
def site(npm_clients: NpmClients) -> Iterator[SiteServer]:
    vendor = {"openpanel-web.js": npm_clients.openpanel_web,
              "plausible.js": npm_clients.plausible, "umami.js": npm_clients.umami}
    with serve_site(vendor, {}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (never a downloaded browser).

    Module scope: Playwright's sync API allows one instance per thread at a time, and other
    test modules (the dashboards' browser tests) start their own."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()

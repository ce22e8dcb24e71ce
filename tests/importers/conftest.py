"""Fixtures of the importer tests: a real collector process (the importers send over HTTP,
and a killed importer must be a process of its own), a worker landing into a raw database
of the module's own, and a project to import into."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # importers_support beside this file

from importers_support import Collector, Landing, start_worker  # noqa: E402


@pytest.fixture(scope="session")
def import_stack(migrated: None, redis_server, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple]:
    """A raw database of the importer tests' own and a collector (shared by their modules:
    neither consumes anything while other tests run)."""
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse
    from warehouse.migrate import migrate

    root = tmp_path_factory.mktemp("importers")
    settings = get_settings().model_copy(
        update={"raw_database": f"imports_{uuid.uuid4().hex[:8]}"})
    migrate(settings=settings)
    collector = Collector.start(root / "collector.log")
    client = warehouse(settings)
    try:
        yield settings, client, collector, root
    finally:
        collector.stop()
        client.command(f"drop database if exists {settings.raw_database} sync")
        client.close()


@pytest.fixture(scope="module")
def landing(import_stack: tuple) -> Iterator[Landing]:
    """The stack, and a worker landing into its raw database for this module only (a worker
    left running would land other tests' imports into it)."""
    settings, client, collector, root = import_stack
    worker = start_worker(root / "worker.log", settings.raw_database)
    try:
        yield Landing(settings, client, collector, root)
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()


@pytest.fixture
def project(landing: Landing) -> str:
    """A fresh project (the importer makes its own temporary client)."""
    from accounts import service
    from accounts.db import session_scope, upgrade

    upgrade()
    project_id = f"imp-{uuid.uuid4().hex[:10]}"
    with session_scope() as session:
        service.create_project(session, name=project_id, domain="shop.example.com",
                               project_id=project_id, mirror=False)
    return project_id


@pytest.fixture(autouse=True)
def _no_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "TERM", "dumb")

"""Fixtures of the security tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from security_support import TRACKHOUSE, stop, wait_for

from trackhouse.settings import PROJECT_ROOT


@pytest.fixture
def root(pytestconfig: pytest.Config) -> ModuleType:
    """tests/conftest.py's helpers (EmbeddedWarehouse, free_port), registered under its path."""
    return pytestconfig.pluginmanager.get_plugin(str(PROJECT_ROOT / "tests" / "conftest.py"))


@pytest.fixture
def start_service(tmp_path: Path, root: ModuleType) -> Iterator[Callable[..., tuple[str, Path]]]:
    """Start ``trackhouse <command> --port P`` with extra environment; returns (base URL, log).
    Waits until ``health_path`` answers 200 on 127.0.0.1; stopped after the test."""
    started: list[subprocess.Popen] = []

    def start(command: list[str], health_path: str, timeout_s: float = 120,
              **env: str) -> tuple[str, Path]:
        port = root.free_port()
        log = tmp_path / f"{command[0]}-{port}.log"
        process = subprocess.Popen(
            [TRACKHOUSE, *command, "--port", str(port)], cwd=PROJECT_ROOT,
            env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for(url + health_path, process, log, timeout_s)
        return url, log

    yield start
    for process in started:
        stop(process)

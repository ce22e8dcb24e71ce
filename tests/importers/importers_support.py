"""Helpers of the importer tests: the collector process, the landing database, running
``trackhouse import`` as a process and reading what landed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support import free_port, wait_until

from trackhouse.settings import PROJECT_ROOT, Settings

TRACKHOUSE = str(Path(sys.executable).parent / "trackhouse")


def start_worker(log_path: Path, raw_database: str) -> subprocess.Popen:
    env = {**os.environ, "TRACKHOUSE_WORKER_FLUSH_INTERVAL_MS": "100",
           "TRACKHOUSE_RAW_DATABASE": raw_database}
    return subprocess.Popen([TRACKHOUSE, "worker"], env=env, cwd=PROJECT_ROOT,
                            stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


@dataclass
class Collector:
    process: subprocess.Popen
    url: str

    @classmethod
    def start(cls, log_path: Path) -> Collector:
        port = free_port()
        process = subprocess.Popen(
            [TRACKHOUSE, "collector", "--port", str(port), "--workers", "1"],
            env=dict(os.environ), cwd=PROJECT_ROOT, stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the collector exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return cls(process, url)
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the collector did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Landing:
    settings: Settings
    client: Any
    collector: Collector
    root: Path

    def landed(self, project_id: str) -> tuple[int, int]:
        """(rows, distinct event ids) of the project's events in the raw table."""
        rows, ids = self.client.query(
            f"select count(), uniqExact(id) from {self.settings.raw_database}.events "
            "where project_id = {p:String}", parameters={"p": project_id}).result_rows[0]
        return int(rows), int(ids)

    def wait_landed(self, project_id: str, expected: int, timeout_s: float = 60) -> None:
        wait_until(lambda: self.landed(project_id)[1] >= expected, timeout_s,
                   f"{expected} events landed")
        time.sleep(0.3)  # a stray copy would land with the same batch or the next flush

    def command(self, source: str, project_id: str, *args: str) -> list[str]:
        return [TRACKHOUSE, "import", source, "--project", project_id,
                "--collector-url", self.collector.url, *args]

    def run(self, source: str, project_id: str, *args: str) -> dict[str, Any]:
        """``trackhouse import ... --json`` in this process (no interpreter to start): its
        summary."""
        from typer.testing import CliRunner

        from trackhouse.cli import app

        done = CliRunner().invoke(app, self.command(source, project_id, *args, "--json")[1:])
        assert done.exit_code == 0, (done.output[-3000:], done.exception)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def kill_midway(self, source: str, project_id: str, *args: str) -> None:
        """Start an import and kill -9 it once a chunk (not all) is checkpointed."""
        from importers_support import checkpoint

        process = subprocess.Popen(self.command(source, project_id, *args, "--json"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    cwd=PROJECT_ROOT)
        try:
            wait_until(lambda: (checkpoint(project_id) or {}).get("read", 0) > 0
                       or process.poll() is not None, 60, "a first checkpoint")
            assert process.poll() is None, "the import finished before it could be killed"
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.wait(10)
        row = checkpoint(project_id)
        assert row is not None and row["finished"] is False


def checkpoint(project_id: str) -> dict[str, Any] | None:
    from sqlalchemy import select

    from accounts.db import session_scope
    from accounts.models import ImportCheckpoint

    with session_scope() as session:
        row = session.scalars(select(ImportCheckpoint).where(
            ImportCheckpoint.project_id == project_id)).first()
        if row is None:
            return None
        return {"read": row.read, "imported": row.imported, "duplicates": row.duplicates,
                "refused": row.refused, "finished": row.finished_at is not None,
                "refusals": row.refusals}

"""Helpers of the security tests: real service processes started on free ports."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

TRACKHOUSE = str(Path(sys.executable).parent / "trackhouse")
FOREIGN_HOST = "rebind.evil.example"


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}:\n"
                               + log.read_text()[-3000:])
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s:\n" + log.read_text()[-3000:])


def stop(process: subprocess.Popen, timeout_s: float = 30) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

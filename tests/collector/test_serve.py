"""``collector.serve``: worker processes on their own SO_REUSEPORT sockets, supervised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from collector_support import root_fixtures, wait_until

from trackhouse.settings import PROJECT_ROOT

ROOT = root_fixtures()

PID_APP = '''
import os

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
'''


def answering_pids(url: str, connections: int) -> set[int]:
    """The worker pids that answered ``connections`` requests, each on a new connection."""
    pids = set()
    for _ in range(connections):
        with httpx.Client() as client:
            pids.add(int(client.get(url).text))
    return pids


def test_workers_share_new_connections_and_are_restarted(tmp_path: Path) -> None:
    (tmp_path / "pidapp.py").write_text(PID_APP)
    port = ROOT.free_port()
    url = f"http://127.0.0.1:{port}/"
    parent = subprocess.Popen(
        [sys.executable, "-c", "from collector.serve import serve; "
         f"serve('pidapp:app', host='127.0.0.1', port={port}, workers=2, "
         "log_level='warning')"],
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{PROJECT_ROOT}"},
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ROOT.wait_for_http(url, 30, parent)
        # the kernel spreads new connections over both workers' sockets (all 40 on one
        # socket by chance: 2 in 10^12)
        pids = answering_pids(url, 40)
        assert len(pids) == 2 and parent.pid not in pids
        victim = pids.pop()
        os.kill(victim, signal.SIGKILL)
        # the supervisor starts another worker in the killed one's place
        wait_until(lambda: len(answering_pids(url, 20) - pids) == 1, timeout_s=30,
                   message="a new worker answers")
        assert victim not in answering_pids(url, 20)
    finally:
        parent.terminate()
        started = time.monotonic()
        output = parent.communicate(timeout=30)[0].decode()
    assert parent.returncode == 0 and time.monotonic() - started < 20, output
    assert "starting another" in output
    # every worker went with the parent: the port is free again
    with httpx.Client() as client:
        try:
            client.get(url, timeout=2)
            raise AssertionError("a worker still answers after the parent stopped")
        except httpx.ConnectError:
            pass

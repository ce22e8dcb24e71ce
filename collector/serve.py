"""Serve an ASGI app with uvicorn in N worker processes, each on its own listening socket.

uvicorn's own ``--workers`` shares ONE listening socket between the workers: whichever is
awake accepts. Long-lived keep-alive connections (SDKs, proxies, load generators) then
pile up on one worker while the others idle (ADR 0022). Here each worker binds its own socket with
``SO_REUSEPORT``, and the kernel spreads new connections over the sockets by a hash of their
addresses, as nginx's ``reuseport`` does.

The parent only supervises: it starts the workers, restarts one that dies, and passes
SIGINT/SIGTERM on. With one worker the app is served in this process.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from typing import Any

import uvicorn

log = logging.getLogger("uvicorn.error")

RESTART_PAUSE_S = 1.0


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) that other processes can bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _worker(app: str, options: dict[str, Any], host: str, port: int) -> None:
    """One worker process: its own socket, its own uvicorn server."""
    config = uvicorn.Config(app, **options, host=host, port=port)
    uvicorn.Server(config).run(sockets=[reuseport_socket(host, port)])


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Serve ``app`` (an import string) on host:port with ``workers`` processes; ``options``
    are uvicorn.Config's."""
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, **options)
        return
    # Held (bound, never listening, so never given a connection) for the parent's life: the
    # port is claimed before any worker starts, and a taken port fails here at once.
    guard = reuseport_socket(host, port)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.Process:
        process = context.Process(target=_worker, args=(app, options, host, port), daemon=False)
        process.start()
        return process

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive():
                process.terminate()

    processes = [start() for _ in range(workers)]
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            for n, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    log.warning("worker %s exited with code %s; starting another",
                                process.pid, process.exitcode)
                    time.sleep(RESTART_PAUSE_S)
                    processes[n] = start()
            time.sleep(0.2)
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        guard.close()

"""The rest of a large request body taken straight from the client's socket (ADR 0032).

uvicorn hands a body to the application in pieces that have been copied four times in user
space (uvloop's read buffer, httptools' piece, uvicorn's buffer, the message's bytes); for an
insert, each piece is then copied once more into the engine's pipe. For a plain body of known
length, the endpoint instead stops uvicorn reading the connection and moves the remaining
bytes from the socket into the pipe with ``splice(2)``, which never copies them through user
space. The connection is closed after the answer: uvicorn's HTTP parser never saw those bytes,
so it could not read a next request on it.

This reaches into uvicorn's httptools request cycle (its transport, buffered body and flow
state); anything else (h11, TLS, another server, no ``os.splice``) keeps the ASGI path.
"""

from __future__ import annotations

import os
import select
import threading
from dataclasses import dataclass
from typing import Any

from warehouse.socket_answer import httptools_cycle

# Below this, the reconnect the closed connection costs the client outweighs the copies saved.
MIN_SPLICE_BYTES = 1 << 20
POLL_S = 0.1  # how often a waiting splice checks whether it was told to stop


@dataclass(frozen=True)
class SocketTail:
    """Body bytes uvicorn had buffered, and how many more are still in the socket."""

    buffered: bytes
    fd: int
    remaining: int
    cycle: Any

    def client_gone(self) -> None:
        """Tell uvicorn the client left (its paused transport cannot notice by itself)."""
        self.cycle.disconnected = True
        self.cycle.transport.close()


def take_socket_tail(receive: Any, seen: int, content_length: int) -> SocketTail | None:
    """Stop uvicorn reading the request's connection and return the body's rest, or None
    (nothing changed) when this server, the connection or the remaining size do not allow it.

    ``seen``: body bytes the application has received so far."""
    cycle = httptools_cycle(receive)
    if (
        not hasattr(os, "splice")
        or cycle is None
        or not getattr(cycle, "more_body", False)
        or getattr(cycle, "disconnected", True)
    ):
        return None
    transport = cycle.transport
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_extra_info("sslcontext") is not None:
        return None
    remaining = content_length - seen - len(cycle.body)
    if remaining < MIN_SPLICE_BYTES:
        return None
    # Paused at the transport itself: uvicorn resumes its own flow control only in receive(),
    # which the body reader no longer calls, and after the answer, once it closed the socket.
    transport.pause_reading()
    buffered = bytes(cycle.body)
    cycle.body = bytearray()
    return SocketTail(buffered, sock.fileno(), content_length - seen - len(buffered), cycle)


def splice_all(source: int, pipe: int, count: int, stop: threading.Event) -> str:
    """Move ``count`` bytes from socket ``source`` into ``pipe`` (both non-blocking); run in a
    worker thread. Returns "done", "client gone", "engine gone" (the pipe's reader closed;
    the rest of the body has been read and dropped) or "stopped"."""
    readable, writable = select.poll(), select.poll()
    readable.register(source, select.POLLIN)
    writable.register(pipe, select.POLLOUT)
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    while count > 0:
        if stop.is_set():
            return "stopped"
        try:
            moved = os.splice(source, pipe, count, flags=flags)
        except BlockingIOError:  # the socket is empty or the pipe full: wait for that one
            if not writable.poll(0):
                writable.poll(POLL_S * 1000)
            else:
                readable.poll(POLL_S * 1000)
            continue
        except BrokenPipeError:
            # Read to the end, so that the answer is not lost to a reset of a socket closed
            # with unread data.
            return "engine gone" if _drain(source, count, stop, readable) else "client gone"
        except OSError:  # ECONNRESET and kin
            return "client gone"
        if moved == 0:
            return "client gone"
        count -= moved
    return "done"


def _drain(source: int, count: int, stop: threading.Event, readable: select.poll) -> bool:
    """Read and drop ``count`` bytes; False if the client went away or time ran out."""
    scratch = bytearray(min(count, 1 << 20))
    while count > 0 and not stop.is_set():
        try:
            got = os.readv(source, [memoryview(scratch)[: min(count, len(scratch))]])
        except BlockingIOError:
            readable.poll(POLL_S * 1000)
            continue
        except OSError:
            return False
        if got == 0:
            return False
        count -= got
    return count == 0

"""An answer written to the client's socket by the worker thread that produces it (ADR 0035).

Through uvicorn, every block of a result crosses from the worker thread that fetched it to
the event-loop thread, which frames it and writes it; the end of a stream is one more round
trip (loop -> worker -> engine -> worker -> loop) before the last bytes go out. For a small
query that fixed path is most of the endpoint's overhead. When the request came through
uvicorn's httptools protocol on a plain socket, the worker instead writes the answer itself
(status line, headers, chunked body) and the loop only tells uvicorn afterwards that the
answer is complete, so that it reads the connection's next request.

Like ``socket_body.py`` this reaches into uvicorn's request cycle (its transport, default
headers, keep-alive and completion state); anything else keeps the ASGI path.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Iterator
from typing import Any

from warehouse.response import ClientGone

HTTPTOOLS_CYCLE = "uvicorn.protocols.http.httptools_impl"


def httptools_cycle(receive: Any) -> Any:
    """uvicorn's httptools request cycle behind ``receive``, or None for any other server."""
    cycle = getattr(receive, "__self__", None)
    return cycle if type(cycle).__module__ == HTTPTOOLS_CYCLE else None


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body (nothing for no data: an empty chunk ends the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


LAST_CHUNK = b"0\r\n\r\n"


class SocketAnswer:
    """The answer to one request, written by a worker thread to a duplicate of the socket's
    descriptor (uvicorn may close its own when the client goes; the number must not be reused
    under a write in flight)."""

    def __init__(self, cycle: Any, fd: int) -> None:
        self.cycle = cycle
        self.fd = fd
        self.started = False  # the first bytes were written: the worker owns the answer

    @classmethod
    def take(cls, receive: Any, method: str) -> SocketAnswer | None:
        """The socket of this request if the answer may bypass uvicorn, else None."""
        cycle = httptools_cycle(receive)
        if cycle is None or method == "HEAD" or cycle.response_started or cycle.disconnected:
            return None
        transport = cycle.transport
        sock = transport.get_extra_info("socket")
        if (
            sock is None
            or transport.get_extra_info("sslcontext") is not None
            or transport.get_write_buffer_size()
        ):
            return None
        return cls(cycle, os.dup(sock.fileno()))

    def head(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """A 200 answer's status line and headers as uvicorn writes them, chunked body."""
        lines = [b"HTTP/1.1 200 OK\r\n"]
        for name, value in [*self.cycle.default_headers, *headers]:
            lines += [name.lower(), b": ", value, b"\r\n"]
            if name.lower() == b"connection" and b"close" in value.lower():
                self.cycle.keep_alive = False
        if not self.cycle.keep_alive and not any(n.lower() == b"connection" for n, _ in headers):
            lines.append(b"connection: close\r\n")
        lines.append(b"transfer-encoding: chunked\r\n\r\n")
        return b"".join(lines)

    def write_body(self, head: bytes, data: bytes, last: bool) -> Iterator[None]:
        """Write ``head`` (if any) and one piece of the body, the last one ending it."""
        yield from self.write(head + chunk(data) + (LAST_CHUNK if last else b""))

    def write(self, data: bytes) -> Iterator[None]:
        """Write all of ``data`` (in a worker thread), yielding whenever the socket's buffer
        is full: the thread is then given back, and the writing resumes once ``writable``
        (no thread waits for a slow client). ClientGone if the client went away."""
        self.started = True
        view = memoryview(data)
        while view:
            if self.cycle.disconnected:  # uvicorn saw the connection end
                raise ClientGone
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                yield
            except OSError as error:
                if error.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                    raise ClientGone from error
                raise

    async def writable(self) -> None:
        """On the loop: until the socket takes more bytes (or has failed: the next write
        then tells)."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_writer(self.fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_writer(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def complete(self, whole: bool) -> None:
        """On the loop, once the worker has stopped writing: uvicorn's bookkeeping of a
        finished response (next request of the connection, keep-alive timer, close). An
        answer cut short (``whole`` False) closes the connection, as uvicorn does."""
        cycle = self.cycle
        cycle.keep_alive = cycle.keep_alive and whole
        cycle.response_started = cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()

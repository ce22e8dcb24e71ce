"""Writing one answer of the ClickHouse HTTP interface: status, the headers clients read,
the body (compressed if negotiated), an error before or after the answer started, and the
X-ClickHouse-Summary figures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from warehouse.http_protocol import ClickHouseError, StreamEncoder, exception_block
from warehouse.sql_text import engine_text

if TYPE_CHECKING:
    from warehouse.socket_answer import SocketAnswer

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):
    """The client closed the connection before the answer was complete."""


_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
}


class Responder:
    """Writes one HTTP answer with the headers ClickHouse clients read.

    On the loop through the ASGI ``send``; a streamed result is answered from the worker
    thread that fetches it (the ``*_in_thread`` methods): straight to the client's socket when
    ``socket`` is set (warehouse/socket_answer.py), else handed to the loop block by block."""

    def __init__(
        self,
        send: Send,
        query_id: str,
        timezone: str,
        encoder: StreamEncoder | None,
        take_socket: Callable[[], SocketAnswer | None] = lambda: None,
    ) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._take_socket = take_socket
        self.socket: SocketAnswer | None = None
        self._head = b""  # status line and headers not yet written to the socket
        self.whole = False  # the worker wrote the answer to its end
        self.query_id = query_id
        self.timezone = timezone
        self.encoder = encoder
        self.started = False
        self.exception_tag = uuid.uuid4().hex[:16]
        # Work that must happen before the client sees the end of the answer: returning the
        # connection, unlocking the session (the client's next request may follow at once).
        # Each as a coroutine for the loop and as a function for a worker thread.
        self._before_finish: list[tuple[Callable[[], Awaitable[None]], Callable[[], None]]] = []
        self.clean = True  # False when the request ended abnormally (client gone, bug)
        # Set once the body was read past the server's parser (socket_body.py): the
        # connection cannot carry another request.
        self.close_connection = False

    def before_finish(
        self, work: Callable[[], Awaitable[None]], in_thread: Callable[[], None]
    ) -> None:
        """``work`` (on the loop) or ``in_thread`` (the same, in a worker thread) runs once,
        before the end of the answer."""
        self._before_finish.append((work, in_thread))

    async def finish_work(self) -> None:
        while self._before_finish:
            await self._before_finish.pop()[0]()

    def finish_work_in_thread(self) -> None:
        while self._before_finish:
            self._before_finish.pop()[1]()

    def take_socket(self) -> None:
        """Answer from the worker straight to the socket, if the server allows it."""
        self.socket = self._take_socket()

    def hand_back(self) -> None:
        """On the loop, after the request: the server takes the connection back."""
        if self.socket is None:
            return
        if self.socket.started:
            self.socket.complete(self.whole)
        self.socket.close()

    def _base_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"x-clickhouse-query-id", engine_text(self.query_id)),
            (b"x-clickhouse-timezone", self.timezone.encode()),
            (b"x-clickhouse-server-display-name", DISPLAY_NAME),
        ]
        if self.close_connection:
            headers.append((b"connection", b"close"))
        return headers

    async def start(
        self,
        summary: dict[str, Any],
        output_format: str | None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = self._answer_headers(summary, output_format, extra)
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        self.started = True

    def _answer_headers(
        self,
        summary: dict[str, Any],
        output_format: str | None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> list[tuple[bytes, bytes]]:
        headers = self._base_headers()
        headers.append((b"x-clickhouse-summary", json.dumps(summary).encode()))
        if output_format:
            headers.append((b"x-clickhouse-format", output_format.encode()))
            content_type = _CONTENT_TYPES.get(output_format.lower(), "application/octet-stream")
            headers.append((b"x-clickhouse-exception-tag", self.exception_tag.encode()))
        else:
            content_type = "text/plain; charset=UTF-8"
        headers.append((b"content-type", content_type.encode()))
        if self.encoder is not None:
            headers.append((b"content-encoding", self.encoder.encoding.encode()))
        headers.extend(extra or [])
        return headers

    def _encoded(self, data: bytes, more: bool) -> bytes:
        if self.encoder is None:
            return data
        return self.encoder.encode(data) + (b"" if more else self.encoder.finish())

    async def body(self, data: bytes, more: bool) -> None:
        if not more:
            await self.finish_work()
        data = self._encoded(data, more)
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": more})
        except OSError as error:  # uvicorn raises when the peer has gone
            raise ClientGone from error

    async def error(self, error: ClickHouseError) -> None:
        await self.finish_work()
        if self.socket is not None and self.socket.started:
            return  # the worker's answer, cut short: the connection is closed (hand_back)
        if self.started:  # mid-stream: ClickHouse appends a tagged exception block
            with contextlib.suppress(ClientGone):
                await self.body(exception_block(error, self.exception_tag), more=False)
            return
        headers = self._base_headers() + [
            (b"x-clickhouse-exception-code", str(error.code).encode()),
            (b"content-type", b"text/plain; charset=UTF-8"),
        ]
        if error.http_status == 401:
            headers.append((b"www-authenticate", b'Basic realm="ClickHouse server HTTP API"'))
        await self._send(
            {"type": "http.response.start", "status": error.http_status, "headers": headers}
        )
        await self._send({"type": "http.response.body", "body": error.body(), "more_body": False})
        self.started = True

    # --- from the worker thread of a streamed result ------------------------------------
    def start_in_thread(self, summary: dict[str, Any], output_format: str) -> None:
        if self.socket is None:
            self._on_loop(self.start(summary, output_format))
            return
        self._head = self.socket.head(self._answer_headers(summary, output_format))

    def body_in_thread(self, data: bytes, more: bool) -> Iterator[None]:
        """Yields while the client's socket is full (SocketAnswer.write)."""
        if self.socket is None:
            self._on_loop(self.body(data, more))
            return
        if not more:
            self.finish_work_in_thread()
        head, self._head = self._head, b""
        self.started = True
        yield from self.socket.write_body(head, self._encoded(data, more), last=not more)
        self.whole = not more

    def error_in_thread(self, error: ClickHouseError) -> Iterator[None]:
        """A failure after the answer started: ClickHouse's tagged exception block."""
        if self.socket is None:
            self._on_loop(self.error(error))
            return
        with contextlib.suppress(ClientGone):
            yield from self.body_in_thread(exception_block(error, self.exception_tag), False)

    def _on_loop(self, coroutine: Awaitable[None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()  # type: ignore[arg-type]


DISPLAY_NAME = socket.gethostname().encode()


def summary_figures(
    read_rows: int,
    read_bytes: int,
    written_rows: int,
    written_bytes: int,
    result_rows: int,
    result_bytes: int,
    elapsed_s: float,
) -> dict[str, str]:
    """X-ClickHouse-Summary (ClickHouse sends every figure as a string)."""
    return {
        "read_rows": str(read_rows),
        "read_bytes": str(read_bytes),
        "written_rows": str(written_rows),
        "written_bytes": str(written_bytes),
        "total_rows_to_read": str(read_rows),
        "result_rows": str(result_rows),
        "result_bytes": str(result_bytes),
        "elapsed_ns": str(int(elapsed_s * 1e9)),
    }


def summary_of(result: Any, elapsed_s: float) -> dict[str, str]:
    """The summary of a statement chdb ran whole."""
    return summary_figures(
        result.storage_rows_read(),
        result.storage_bytes_read(),
        result.rows_written(),
        result.bytes_written(),
        result.rows_read(),
        result.bytes_read(),
        elapsed_s,
    )


class Progress:
    """Figures of a streamed result, summed over its blocks (for X-ClickHouse-Summary)."""

    def __init__(self) -> None:
        self.read_rows = self.read_bytes = self.result_rows = self.result_bytes = 0

    def add(self, block: Any, size: int) -> None:
        self.read_rows += block.storage_rows_read()
        self.read_bytes += block.storage_bytes_read()
        self.result_rows += block.rows_read()
        self.result_bytes += size

    def summary(self, elapsed_s: float) -> dict[str, str]:
        return summary_figures(
            self.read_rows, self.read_bytes, 0, 0, self.result_rows, self.result_bytes, elapsed_s
        )


async def plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=UTF-8")],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})

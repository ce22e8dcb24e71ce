"""The embedded warehouse: chdb served over ClickHouse's HTTP interface.

One process owns the chdb data directory and answers the ClickHouse HTTP protocol, so
clickhouse-connect, dbt-clickhouse and curl use it exactly like a ClickHouse server. A plain
ASGI application on uvicorn keeps the per-request overhead small; every chdb call runs in a
worker thread (chdb releases the GIL), so a long query blocks neither ``/ping`` nor other
clients. Request bodies are decoded and fed to chdb's streaming insert as they arrive, and
results are streamed back block by block, so neither is held whole in memory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesParser
from email.policy import HTTP
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from warehouse import access, http_protocol
from warehouse.http_protocol import (
    PARAM_PREFIX,
    TRANSPORT_PARAMETERS,
    ClickHouseError,
    NeedMoreData,
    StreamDecoder,
    StreamEncoder,
    exception_block,
    parse_insert_head,
    trailing_format,
)
from warehouse.sessions import (
    MAX_SESSION_TIMEOUT_S,
    Engine,
    EngineConnection,
    ExternalTable,
    Session,
    create_external_tables,
    drop_external_tables,
    quote_identifier,
)
from warehouse.streaming_insert import StreamingInsert

log = logging.getLogger("trackhouse.warehouse")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar("T")

HEAD_LIMIT = 256 * 1024  # ClickHouse's max_query_size: the statement must fit in this
BATCH_BYTES = 1 << 20  # result bytes per send
SPOOL_MEMORY_BYTES = 16 << 20  # a wait_end_of_query result beyond this waits on disk
DEFAULT_FORMAT = "TabSeparated"
# Every statement starts with a comment naming its request, so that KILL QUERY can find it
# when the client goes away (chdb does not take a query_id from its caller).
QUERY_TAG_PREFIX = "/* trackhouse-query "
# Statements chdb can stream block by block (send_query); others run whole.
STREAMABLE_KEYWORDS = frozenset({"SELECT", "WITH"})
# chdb encodes each streamed block as a complete document of the output format, so only
# formats without a global header or footer may be streamed (a JSON or Arrow answer, or
# CSVWithNames' header, would repeat per block); the others are produced whole.
STREAM_SAFE_FORMATS = frozenset(
    name.lower()
    for name in (
        "Native",
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "CSV",
        "RowBinary",
        "JSONEachRow",
        "JSONCompactEachRow",
        "JSONStringsEachRow",
        "JSONCompactStringsEachRow",
        "JSONLines",
        "NDJSON",
        "LineAsString",
    )
)


def stream_safe(output_format: str) -> bool:
    return output_format.lower() in STREAM_SAFE_FORMATS


_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
}


class ClientGone(Exception):
    """The client closed the connection before the answer was complete."""


class BodyReader:
    """The request body, decoded chunk by chunk, with the size limit enforced."""

    def __init__(self, receive: Receive, encoding: str | None, max_bytes: int) -> None:
        self._receive = receive
        self._decoder = StreamDecoder(encoding)
        self._max_bytes = max_bytes
        self._received = 0
        self._pending: list[bytes] = []
        self.finished = False

    def push_back(self, data: bytes) -> None:
        if data:
            self._pending.append(data)

    async def read(self) -> bytes | None:
        """The next decoded chunk; None once the body is exhausted."""
        if self._pending:
            return self._pending.pop(0)
        while not self.finished:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            raw = message.get("body", b"")
            self._received += len(raw)
            if self._received > self._max_bytes:
                raise too_large(self._max_bytes)
            if not message.get("more_body", False):
                self.finished = True
                tail = self._decoder.decode(raw) + self._decoder.finish()
                if tail:
                    return tail
                return None
            decoded = self._decoder.decode(raw)
            if decoded:
                return decoded
        return None

    async def read_all(self) -> bytes:
        """The whole (decoded) body; the size limit applies after decompression too."""
        chunks, size = [], 0
        while (chunk := await self.read()) is not None:
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_bytes:
                raise too_large(self._max_bytes)
        return b"".join(chunks)

    async def wait_for_disconnect(self) -> None:
        """Return when the client goes away (only once the body has been read)."""
        if not self.finished:
            await asyncio.Event().wait()  # the body is still being read elsewhere
        while (await self._receive())["type"] != "http.disconnect":
            pass


def too_large(limit: int) -> ClickHouseError:
    return ClickHouseError.named(
        "QUERY_IS_TOO_LARGE",
        f"Request body exceeds the limit of {limit} bytes (TRACKHOUSE_WAREHOUSE_MAX_BODY_BYTES)",
    )


def readonly_error() -> ClickHouseError:
    return ClickHouseError.named(
        "READONLY",
        "Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
        "readonly. You should use method POST for modifying queries",
    )


class Responder:
    """Writes one HTTP answer with the headers ClickHouse clients read."""

    def __init__(
        self, send: Send, query_id: str, timezone: str, encoder: StreamEncoder | None
    ) -> None:
        self._send = send
        self.query_id = query_id
        self.timezone = timezone
        self.encoder = encoder
        self.started = False
        self.exception_tag = uuid.uuid4().hex[:16]
        # Work that must happen before the client sees the end of the answer: returning the
        # connection, unlocking the session (the client's next request may follow at once).
        self._before_finish: list[Callable[[], Awaitable[None]]] = []
        self.clean = True  # False when the request ended abnormally (client gone, bug)

    def before_finish(self, work: Callable[[], Awaitable[None]]) -> None:
        self._before_finish.append(work)

    async def finish_work(self) -> None:
        while self._before_finish:
            await self._before_finish.pop()()

    def _base_headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-clickhouse-query-id", self.query_id.encode()),
            (b"x-clickhouse-timezone", self.timezone.encode()),
            (b"x-clickhouse-server-display-name", DISPLAY_NAME),
        ]

    async def start(
        self,
        summary: dict[str, Any],
        output_format: str | None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
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
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        self.started = True

    async def body(self, data: bytes, more: bool) -> None:
        if not more:
            await self.finish_work()
        if self.encoder is not None:
            data = self.encoder.encode(data) + (b"" if more else self.encoder.finish())
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": more})
        except OSError as error:  # uvicorn raises when the peer has gone
            raise ClientGone from error

    async def error(self, error: ClickHouseError) -> None:
        await self.finish_work()
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


class WarehouseApp:
    """The ASGI application: ClickHouse's HTTP interface over one chdb engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        user: str = "default",
        password: str = "",
        max_body_bytes: int = 1 << 30,
        max_workers: int = 64,
        access_policy: access.AccessPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.access_policy = access_policy or access.AccessPolicy()
        self.user = user
        self.password = password
        self.max_body_bytes = max_body_bytes
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="chdb")
        self._reaper: asyncio.Task | None = None
        http_protocol.ENGINE_VERSION = engine.version

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, partial(function, *args)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if (refusal := self.access_policy.refusal(scope)) is not None:
            await access.refuse(send, refusal)
            return
        path = scope["path"]
        method = scope["method"]
        if path in ("/ping", "/replicas_status") or (
            path == "/" and method in ("GET", "HEAD") and not _has_query(scope)
        ):
            await _plain(send, 200, b"Ok.\n")
            return
        if path not in ("/", "/query"):
            await _plain(send, 404, b"There is no handle " + path.encode() + b"\n")
            return
        await self.handle_query(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._reaper = asyncio.create_task(self._reap_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._reaper:
                    self._reaper.cancel()
                # uvicorn has let in-flight requests finish (or given up on them); a query
                # still running in a worker thread is stopped before its connection closes.
                await self.in_thread(self.engine.kill, QUERY_TAG_PREFIX)
                await self.in_thread(self.engine.close)
                self.executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.in_thread(self.engine.reap)
            except Exception:  # keep reaping whatever one round hit
                log.exception("session reaper failed")

    # --- one query request ----------------------------------------------------------------
    async def handle_query(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = dict(
            parse_qsl(scope["query_string"].decode("utf-8", "replace"), keep_blank_values=True)
        )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query_id = (
            params.get("query_id") or headers.get("x-clickhouse-query-id") or str(uuid.uuid4())
        )
        encoder = None
        if params.get("enable_http_compression") in ("1", "true"):
            encoder = StreamEncoder.negotiate(headers.get("accept-encoding"))
        responder = Responder(send, query_id, self.engine.timezone, encoder)
        try:
            self.authenticate(params, headers)
            declared = headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise too_large(self.max_body_bytes)
            if params.get("decompress") in ("1", "true"):
                # Read as plain data, such a body would be stored as garbage or misreported.
                raise ClickHouseError.named(
                    "NOT_IMPLEMENTED",
                    "decompress=1 (ClickHouse's own compressed request body) is not supported "
                    "by the embedded warehouse; send Content-Encoding: gzip, zstd or lz4 instead",
                )
            body = BodyReader(receive, headers.get("content-encoding"), self.max_body_bytes)
            external: list[ExternalTable] = []
            if headers.get("content-type", "").startswith("multipart/form-data"):
                fields, files = _form_parts(headers["content-type"], await body.read_all())
                params.update(fields)
                external = [ExternalTable.from_request(n, d, params) for n, d in files.items()]
            read_only = scope["method"] in ("GET", "HEAD")  # as in ClickHouse: GET is readonly
            await self.run_request(params, headers, body, responder, read_only, external)
        except ClientGone:
            responder.clean = False
        except ClickHouseError as error:
            await responder.error(error)
        except Exception as error:  # an unexpected failure still answers like ClickHouse
            log.exception("query %s failed", query_id)
            responder.clean = False
            await responder.error(ClickHouseError.from_engine(error))
        finally:
            await responder.finish_work()

    def authenticate(self, params: dict[str, str], headers: dict[str, str]) -> None:
        user = headers.get("x-clickhouse-user") or params.get("user")
        password = headers.get("x-clickhouse-key") or params.get("password")
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                decoded = base64.b64decode(authorization[6:].strip()).decode()
                user, _, password = decoded.partition(":")
        user = user or "default"
        password = password or ""
        if not (
            hmac.compare_digest(user.encode(), self.user.encode())
            and hmac.compare_digest(password.encode(), self.password.encode())
        ):
            raise ClickHouseError.named(
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user "
                "with such name",
            )

    async def run_request(
        self,
        params: dict[str, str],
        headers: dict[str, str],
        body: BodyReader,
        responder: Responder,
        read_only: bool,
        external: list[ExternalTable],
    ) -> None:
        settings = {
            k: v
            for k, v in params.items()
            if k not in TRANSPORT_PARAMETERS and not k.startswith(PARAM_PREFIX)
        }
        query_params = {
            k[len(PARAM_PREFIX) :]: v for k, v in params.items() if k.startswith(PARAM_PREFIX)
        }
        database = params.get("database") or headers.get("x-clickhouse-database") or ""
        request = QueryRequest(
            app=self,
            params=params,
            settings=settings,
            query_params=query_params,
            database=database,
            body=body,
            responder=responder,
            read_only=read_only,
            external=external,
        )
        session_id = params.get("session_id")
        if not session_id:
            # The pool hit is a dictionary lookup; only opening a connection needs a thread.
            pooled = self.engine.take_idle(database, settings)
            if pooled is None:
                pooled = await self.in_thread(self.engine.acquire, database, settings)
            connection: EngineConnection = pooled

            async def give_back() -> None:
                reusable = request.keeps_state and responder.clean
                retired = self.engine.give_back(connection) if reusable else connection
                if retired is not None:
                    await self.in_thread(retired.close)

            responder.before_finish(give_back)
            await request.execute(connection)
            return
        session = await self.in_thread(
            self.engine.lock_session,
            session_id,
            _session_timeout(params),
            params.get("session_check") in ("1", "true"),
        )

        async def unlock() -> None:
            try:
                if external:
                    await self.in_thread(drop_external_tables, session.connection, external)
                if not request.keeps_state:  # USE may have moved the session elsewhere
                    await self.in_thread(session.connection.refresh_database)
            finally:
                self.engine.unlock_session(session)

        responder.before_finish(unlock)
        await self.in_thread(_prepare_session, session, database, settings)
        await request.execute(session.connection)


def _prepare_session(session: Session, database: str, settings: dict[str, str]) -> None:
    if database:
        session.connection.use_database(database)
    session.connection.apply_settings(settings)


def _session_timeout(params: dict[str, str]) -> float | None:
    raw = params.get("session_timeout")
    if not raw:
        return None
    try:
        timeout = float(raw)
    except ValueError:
        timeout = -1
    if not 0 < timeout <= MAX_SESSION_TIMEOUT_S:
        raise ClickHouseError.named(
            "INVALID_SESSION_TIMEOUT",
            f"Invalid session timeout: '{raw}', must be in (0, {MAX_SESSION_TIMEOUT_S}]",
        )
    return timeout


class QueryRequest:
    """Runs the statement of one request on one connection and writes the answer."""

    def __init__(
        self,
        *,
        app: WarehouseApp,
        params: dict[str, str],
        settings: dict[str, str],
        query_params: dict[str, str],
        database: str,
        body: BodyReader,
        responder: Responder,
        read_only: bool,
        external: list[ExternalTable],
    ) -> None:
        self.app = app
        self.read_only = read_only
        self.external = external
        self.params = params
        self.settings = settings
        self.query_params = query_params
        self.database = database
        self.body = body
        self.responder = responder
        self.tag = f"{QUERY_TAG_PREFIX}{uuid.uuid4().hex} */ "
        self.keeps_state = True  # False after SET, USE or CREATE TEMPORARY TABLE
        self.started = time.monotonic()

    async def execute(self, connection: EngineConnection) -> None:
        """Run the request on ``connection`` and write the answer."""
        query_text = self.params.get("query", "")
        if self.external:
            # External tables live for this query only: a pooled connection is retired
            # afterwards, a session drops them before it is unlocked.
            self.keeps_state = False
            await self.app.in_thread(create_external_tables, connection, self.external)
            for table in self.external:
                statement = f"INSERT INTO {quote_identifier(table.name)}"
                await self._stream_into(connection, statement, table.data_format, _once(table.data))
        head = await self._read_head(query_text)
        if head is not None:
            statement, output_format, data = head
            if self.read_only:
                raise readonly_error()
            await self._insert(connection, statement, output_format, data)
            return
        rest = await self.body.read_all()
        sql = (
            (query_text + "\n" + rest.decode("utf-8", "replace"))
            if query_text and rest
            else (query_text or rest.decode("utf-8", "replace"))
        )
        if not sql.strip():
            raise ClickHouseError.named("EMPTY_QUERY", "Empty query")
        await self._statement(connection, sql)

    async def _read_head(self, query_text: str) -> tuple[str, str, bytes] | None:
        """If the request is ``INSERT ... FORMAT x`` + data: (statement, format, first data)."""
        if query_text:
            try:
                head = parse_insert_head(query_text.encode(), complete=True)
            except NeedMoreData:
                head = None
            if head is None:
                return None
            remainder = query_text.encode()[head.data_offset :]
            return head.statement, head.format, remainder
        buffered = b""
        while True:
            chunk = await self.body.read()
            if chunk is None:
                complete = True
            else:
                buffered += chunk
                complete = False
            try:
                parsed = parse_insert_head(buffered, complete=complete)
            except NeedMoreData:
                if len(buffered) > HEAD_LIMIT:
                    parsed = None
                else:
                    continue
            if parsed is None:
                self.body.push_back(buffered)
                return None
            return parsed.statement, parsed.format, buffered[parsed.data_offset :]

    async def _insert(
        self, connection: EngineConnection, statement: str, data_format: str, first: bytes
    ) -> None:
        async def body() -> AsyncIterator[bytes]:
            if first:
                yield first
            while (chunk := await self.body.read()) is not None:
                yield chunk

        result = await self._stream_into(connection, statement, data_format, body())
        elapsed = self.elapsed()
        summary = summary_figures(
            0, 0, result.rows_written(), result.bytes_written(), 0, 0, elapsed
        )
        await self.responder.start(summary, None)
        await self.responder.body(b"", more=False)

    async def _stream_into(
        self,
        connection: EngineConnection,
        statement: str,
        data_format: str,
        chunks: AsyncIterator[bytes],
    ) -> Any:
        """Insert ``chunks`` as they come; the engine's result once they are committed."""
        feed = StreamingInsert.start(
            partial(self.app.in_thread, connection.run),
            self.tag + statement,
            data_format,
            self.settings,
            partial(self.app.in_thread, self.app.engine.kill, self.tag.strip(), False),
        )
        try:
            async for chunk in chunks:
                await feed.append(chunk)
            return await feed.finish()
        except BaseException:
            try:
                await feed.cancel()
            except Exception:  # the original failure is what the client must hear
                log.exception("query %s: cancelling an abandoned insert failed", self.tag)
            raise

    async def _statement(self, connection: EngineConnection, sql: str) -> None:
        default_format = self.params.get("default_format") or DEFAULT_FORMAT
        classified = connection.native.classify_query(sql)
        if classified["statement_count"] > 1:
            raise ClickHouseError.named("SYNTAX_ERROR", "Multi-statements are not allowed")
        returns_rows = str(classified["query_class"]).endswith("READ_ONLY")
        if self.read_only and not returns_rows and http_protocol.first_keyword(sql) != "SET":
            raise readonly_error()
        keyword = http_protocol.first_keyword(sql)
        tagged = self.tag + sql
        output_format = (trailing_format(sql) or default_format) if returns_rows else None
        streamable = keyword in STREAMABLE_KEYWORDS or sql.lstrip().startswith("(")
        if returns_rows and streamable and stream_safe(output_format or DEFAULT_FORMAT):
            await self._stream(connection, tagged, default_format, output_format or DEFAULT_FORMAT)
            return
        # DDL, SHOW, DESCRIBE, ...: small answers that chdb only runs as a whole.
        result = await self._guarded(
            partial(connection.run, tagged, default_format, self.query_params)
        )
        self.keeps_state = self.keeps_state and not (
            keyword in ("SET", "USE") or (keyword == "CREATE" and "TEMPORARY" in sql.upper()[:200])
        )
        summary = summary_of(result, self.elapsed())
        await self.responder.start(summary, output_format)
        await self.responder.body(bytes(result.bytes() or b""), more=False)

    async def _guarded(self, work: Callable[[], T]) -> T:
        """Run engine work in a thread; cancel the statement if the client disconnects."""
        future = asyncio.ensure_future(self.app.in_thread(work))
        watcher = asyncio.ensure_future(self.body.wait_for_disconnect())
        try:
            done, _ = await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if future not in done:
                await self.app.in_thread(self.app.engine.kill, self.tag.strip())
                with contextlib.suppress(BaseException):
                    await future
                raise ClientGone
            return future.result()
        finally:
            watcher.cancel()

    async def _stream(
        self, connection: EngineConnection, sql: str, default_format: str, output_format: str
    ) -> None:
        """Answer a SELECT block by block as the engine produces it.

        With ``wait_end_of_query=1`` (clickhouse-connect's default for query()) the answer
        starts only once the query has finished, so that a late error still gets an error
        status; the result waits in a spooled temporary file (memory up to a bound, then
        disk), as ClickHouse buffers it, rather than whole in memory.
        """
        native = connection.native
        spool = None
        if self.params.get("wait_end_of_query") in ("1", "true"):
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
        progress = Progress()
        handle: list[Any] = []

        def pull() -> tuple[list[bytes], bool]:
            """Blocks until BATCH_BYTES or the end (one thread hop, not one per block)."""
            chunks: list[bytes] = []
            size = 0
            try:
                if not handle:
                    handle.append(native.send_query(sql, default_format, params=self.query_params))
                while True:
                    result = native.streaming_fetch_result(handle[0])
                    if result is None or not (result.rows_read() or result.bytes()):
                        return chunks, True
                    data = bytes(result.bytes())
                    progress.add(result, len(data))
                    size += len(data)
                    if spool is not None:
                        spool.write(data)
                    else:
                        chunks.append(data)
                    if size >= BATCH_BYTES:
                        return chunks, False
            except RuntimeError as error:
                raise ClickHouseError.from_engine(error) from None

        finished = False
        try:
            chunks, finished = await self._guarded(pull)
            if spool is not None:
                while not finished:
                    chunks, finished = await self._guarded(pull)
                spool.seek(0)
                await self.responder.start(progress.summary(self.elapsed()), output_format)
                while piece := await self.app.in_thread(spool.read, BATCH_BYTES):
                    await self.responder.body(piece, more=True)
                await self.responder.body(b"", more=False)
                return
            await self.responder.start(progress.summary(self.elapsed()), output_format)
            await self.responder.body(b"".join(chunks), more=not finished)
            while not finished:
                try:
                    chunks, done = await self._guarded(pull)
                except ClickHouseError as error:
                    finished = True  # the failed stream is over; nothing left to cancel
                    await self.responder.error(error)
                    return
                finished = done
                await self.responder.body(b"".join(chunks), more=not finished)
        finally:
            if not finished and handle:
                with contextlib.suppress(Exception):
                    await self.app.in_thread(native.streaming_cancel_query, handle[0])
            if spool is not None:
                spool.close()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


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


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _has_query(scope: Scope) -> bool:
    return b"query=" in scope.get("query_string", b"")


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=UTF-8")],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _form_parts(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """A multipart/form-data body: text fields (the query, bind parameters) and file parts
    (external tables)."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename():
            files[str(name)] = data
        else:
            fields[str(name)] = data.decode("utf-8", "replace")
    return fields, files


def serve(
    host: str | None = None, port: int | None = None, data_dir: str | Path | None = None
) -> None:
    """Run the embedded warehouse until SIGTERM/SIGINT (then shut down cleanly)."""
    import uvicorn

    from trackhouse.secure_files import read_or_create_secret
    from trackhouse.settings import get_settings

    settings = get_settings()
    host = host or settings.warehouse_host
    port = port or settings.warehouse_port
    path = Path(data_dir) if data_dir else settings.effective_warehouse_data_dir
    path.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    engine = Engine(str(path), session_timeout_s=settings.warehouse_session_timeout_s)
    app = WarehouseApp(
        engine,
        user=settings.clickhouse_user,
        # never without a password, even when started with TRACKHOUSE_CLICKHOUSE_URL set
        password=settings.clickhouse_password.get_secret_value()
        or read_or_create_secret(settings.warehouse_password_file),
        max_body_bytes=settings.warehouse_max_body_bytes,
        access_policy=access.AccessPolicy.configured(
            settings.warehouse_allowed_hosts, settings.warehouse_allowed_origins, host
        ),
    )
    log.info("warehouse: chdb %s on %s, serving http://%s:%s", engine.version, path, host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=15,
        # Pooled client connections idle between queries; closing them sooner than this
        # only makes clients reconnect (or race a closing socket) more often.
        timeout_keep_alive=30,
        loop="auto",
        http="auto",
    )

    def after_graceful_stop(signum: int, frame: Any) -> None:
        """uvicorn handles SIGTERM/SIGINT while it serves (in-flight requests finish, every
        chdb connection is closed) and then re-raises the signal; that second delivery lands
        here so that a clean stop exits with status 0 instead of dying by the signal."""

    signal.signal(signal.SIGTERM, after_graceful_stop)
    signal.signal(signal.SIGINT, after_graceful_stop)
    uvicorn.Server(config).run()
    log.info("warehouse stopped")

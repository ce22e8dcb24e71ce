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
from warehouse.allocator import keep_body_buffers_in_the_heap
from warehouse.http_protocol import (
    PARAM_PREFIX,
    TRANSPORT_PARAMETERS,
    ClickHouseError,
    NativeRevision,
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
    create_external_tables,
    drop_external_tables,
    engine_params,
    engine_text,
    quote_identifier,
)
from warehouse.streaming_insert import StreamingInsert

log = logging.getLogger("trackhouse.warehouse")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar("T")

CANCEL_WAIT_S = 10.0  # a cancelled statement gets this long to end before it is given up on
CANCEL_RETRY_S = 0.25  # a kill that missed (statement not registered yet) is repeated this often
CANCEL_GRACE_S = 0.2  # engine work this close to its end is let finish rather than killed
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
            (b"x-clickhouse-query-id", engine_text(self.query_id)),
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
        # Cancellations run on threads of their own: with every worker busy on abandoned
        # queries, a kill queued behind them would never run.
        self.control = ThreadPoolExecutor(max_workers=4, thread_name_prefix="chdb-control")
        self._reaper: asyncio.Task | None = None
        http_protocol.ENGINE_VERSION = engine.version

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, partial(function, *args)
        )

    async def in_control(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.control, partial(function, *args)
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
            await _plain(send, 404, b"There is no handle " + engine_text(path) + b"\n")
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
                await self.in_control(self.engine.kill, QUERY_TAG_PREFIX, False)
                await self.in_thread(self.engine.close)
                self.executor.shutdown(wait=False, cancel_futures=True)
                self.control.shutdown(wait=False, cancel_futures=True)
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
        # surrogateescape keeps bytes that are not UTF-8 (engine_text restores them for chdb)
        params = dict(
            parse_qsl(
                scope["query_string"].decode("utf-8", "surrogateescape"),
                keep_blank_values=True,
                encoding="utf-8",
                errors="surrogateescape",
            )
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
        # both comparisons always run: a short cut would tell which user names exist
        user_matches = hmac.compare_digest(engine_text(user), engine_text(self.user))
        password_matches = hmac.compare_digest(engine_text(password), engine_text(self.password))
        if not (user_matches and password_matches):
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
                if request.keyword == "USE":
                    await self.in_thread(session.remember_use)
                elif request.keyword == "SET" and request.succeeded:
                    names = http_protocol.set_statement_names(request.sql)
                    await self.in_thread(session.remember_set, names)
            finally:
                self.engine.unlock_session(session)

        responder.before_finish(unlock)
        await self.in_thread(session.prepare, database, settings)
        await request.execute(session.connection)


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
        self.keyword = ""  # the statement's first keyword, once known
        self.sql = ""
        self.succeeded = False
        self.abandoned = False  # the client went away; engine work not yet started is skipped
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
        body_text = rest.decode("utf-8", "surrogateescape")  # engine_text restores the bytes
        sql = (query_text + "\n" + body_text) if query_text and rest else (query_text or body_text)
        if not sql.strip():
            raise ClickHouseError.named("EMPTY_QUERY", "Empty query")
        await self._statement(connection, sql)

    async def _read_head(self, query_text: str) -> tuple[str, str, bytes] | None:
        """If the request is ``INSERT ... FORMAT x`` + data: (statement, format, first data)."""
        if query_text:
            try:
                head = parse_insert_head(engine_text(query_text), complete=True)
            except NeedMoreData:
                head = None
            if head is None:
                return None
            remainder = engine_text(query_text)[head.data_offset :]
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
            self._kill,
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
        classified = connection.native.classify_query(engine_text(sql))
        if classified["statement_count"] > 1:
            raise ClickHouseError.named("SYNTAX_ERROR", "Multi-statements are not allowed")
        returns_rows = str(classified["query_class"]).endswith("READ_ONLY")
        if self.read_only and not returns_rows and http_protocol.first_keyword(sql) != "SET":
            raise readonly_error()
        keyword = http_protocol.first_keyword(sql)
        self.keyword, self.sql = keyword, sql
        tagged = self.tag + sql
        output_format = (trailing_format(sql) or default_format) if returns_rows else None
        streamable = keyword in STREAMABLE_KEYWORDS or sql.lstrip().startswith("(")
        if returns_rows and streamable and stream_safe(output_format or DEFAULT_FORMAT):
            await self._stream(connection, tagged, default_format, output_format or DEFAULT_FORMAT)
            return
        # DDL, SHOW, DESCRIBE, ...: small answers that chdb only runs as a whole.
        result = await self._guarded(
            partial(connection.run, tagged, default_format, self.query_params), self._kill
        )
        self.succeeded = True
        self.keeps_state = self.keeps_state and not (
            keyword in ("SET", "USE") or (keyword == "CREATE" and "TEMPORARY" in sql.upper()[:200])
        )
        summary = summary_of(result, self.elapsed())
        answer = bytes(result.bytes() or b"")
        requested = NativeRevision.requested(self.params, output_format or "")
        if requested and answer:
            revision = NativeRevision(requested)
            if revision.wants_types(answer):
                revision.real_types = await self.app.in_thread(self._real_types, connection, sql)
            answer = revision.convert(answer, walk_all=True)
        await self.responder.start(summary, output_format)
        await self.responder.body(answer, more=False)

    async def _kill(self) -> bool:
        """Cancel this request's running statement without waiting for it to end; say
        whether it was found. Never ``KILL ... SYNC``: a streamed query leaves
        system.processes only once its stream is released, which happens after the kill, so
        a synchronous kill waited forever (and, holding the engine's kill lock, blocked every
        other cancellation)."""
        return await self.app.in_control(self.app.engine.kill, self.tag.strip(), False)

    def _real_types(self, connection: EngineConnection, sql: str) -> list[str]:
        """The result's column types as the engine knows them: chdb drops DateTime's time
        zone from Native headers, DESCRIBE keeps it ([] if the statement cannot be described:
        the types then stay as chdb wrote them)."""
        statement = http_protocol.without_format(sql)
        # On a connection of its own: a statement on the streaming one would end its stream.
        # (A session's temporary tables are not seen there; their types stay as chdb wrote.)
        engine = self.app.engine
        helper = engine.acquire(connection.database, connection.settings)
        try:
            described = helper.run(f"DESCRIBE ({statement})", "TabSeparatedRaw", self.query_params)
        except ClickHouseError:
            return []
        finally:
            retired = engine.give_back(helper)
            if retired is not None:
                retired.close()
        lines = bytes(described.bytes()).decode("utf-8", "surrogateescape").splitlines()
        return [line.split("\t")[1] for line in lines if "\t" in line]

    async def _guarded(self, work: Callable[[], T], cancel: Callable[[], Awaitable[bool]]) -> T:
        """Run engine work in a thread; cancel the statement if the client disconnects."""
        future = asyncio.ensure_future(self.app.in_thread(work))
        watcher = asyncio.ensure_future(self.body.wait_for_disconnect())
        try:
            done, _ = await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if future not in done:
                self.abandoned = True
                await self._cancel_until_done(future, cancel)
                raise ClientGone
            return future.result()
        finally:
            watcher.cancel()

    async def _cancel_until_done(
        self, future: asyncio.Future[Any], cancel: Callable[[], Awaitable[bool]]
    ) -> None:
        """Cancel until the engine work ends (its thread is free again) or CANCEL_WAIT_S.

        A kill can miss a statement that is not registered yet, so it is repeated."""
        # A pull of a streamed query usually ends with its block within milliseconds; a kill
        # (serialised in the engine's process list) is for work that does not.
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(future), CANCEL_GRACE_S)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while not future.done() and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                await cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(future), CANCEL_RETRY_S)
        if not future.done():
            log.error("query %s: still running %.0f s after cancelling", self.tag, CANCEL_WAIT_S)
        elif not future.cancelled():
            future.exception()  # retrieved: the client is gone, nobody else will read it

    async def _stream(
        self, connection: EngineConnection, sql: str, default_format: str, output_format: str
    ) -> None:
        """Answer a SELECT block by block as the engine produces it.

        With ``wait_end_of_query=0`` the answer starts with the first block, as a server
        starts it; an error after that goes into the stream as ClickHouse's tagged exception
        block (clients raise it). With ``wait_end_of_query=1`` (clickhouse-connect's default
        for query()) the answer starts only once the query has finished, so that a late error
        still gets an error status; the result waits in a spooled temporary file (memory up to
        a bound, then disk), as ClickHouse buffers it, rather than whole in memory.
        """
        native = connection.native
        spool = None
        if self.params.get("wait_end_of_query") in ("1", "true"):
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
        progress = Progress()
        handle: list[Any] = []
        requested = NativeRevision.requested(self.params, output_format)
        revision: list[NativeRevision] = []

        def pull() -> tuple[bytes, bool]:
            """The next block (spooling: every block up to BATCH_BYTES); True at the end."""
            size = 0
            if self.abandoned:  # the client left while this waited for a thread
                raise ClientGone
            try:
                if not handle:
                    if requested:
                        revision.append(NativeRevision(requested))
                    bound = engine_params(self.query_params)
                    handle.append(native.send_query(engine_text(sql), default_format, params=bound))
                while True:
                    result = native.streaming_fetch_result(handle[0])
                    if result is None or not (result.rows_read() or result.bytes()):
                        return b"", True
                    data = bytes(result.bytes())
                    progress.add(result, len(data))
                    if revision:
                        if revision[0].wants_types(data):  # the stream may run meanwhile
                            revision[0].real_types = self._real_types(connection, sql)
                        data = revision[0].convert(data)
                    if spool is None:
                        return data, False
                    spool.write(data)
                    size += len(data)
                    if size >= BATCH_BYTES:
                        return b"", False
            except RuntimeError as error:
                raise ClickHouseError.from_engine(error) from None

        finished = False
        try:
            data, finished = await self._guarded(pull, self._kill)
            if spool is not None:
                while not finished:
                    data, finished = await self._guarded(pull, self._kill)
                spool.seek(0)
                await self.responder.start(progress.summary(self.elapsed()), output_format)
                while piece := await self.app.in_thread(spool.read, BATCH_BYTES):
                    await self.responder.body(piece, more=True)
                await self.responder.body(b"", more=False)
                return
            await self.responder.start(progress.summary(self.elapsed()), output_format)
            await self.responder.body(data, more=not finished)
            while not finished:
                try:
                    data, finished = await self._guarded(pull, self._kill)
                except ClickHouseError as error:
                    finished = True  # the failed stream is over; nothing left to cancel
                    await self.responder.error(error)
                    return
                await self.responder.body(data, more=not finished)
        finally:
            if not finished and handle:
                await self._release_stream(native, handle[0])
            if spool is not None:
                spool.close()

    async def _release_stream(self, native: Any, stream: Any) -> None:
        """End an abandoned streamed query by releasing its stream (a fraction of a
        millisecond, and the producer waiting for its reader gives up); it is killed only if
        that does not end it at once."""
        release = asyncio.ensure_future(self.app.in_control(native.streaming_cancel_query, stream))
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(release), CANCEL_GRACE_S)
        await self._cancel_until_done(release, self._kill)

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
            fields[str(name)] = data.decode("utf-8", "surrogateescape")
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
    keep_body_buffers_in_the_heap()
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

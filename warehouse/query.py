"""The statement of one request, run on one connection, and its answer."""

from __future__ import annotations

import contextlib
import time
import uuid
from functools import partial
from typing import TYPE_CHECKING

from warehouse import inserts, sql_text
from warehouse.cancellation import QUERY_TAG_PREFIX, GuardedWork
from warehouse.http_protocol import ClickHouseError
from warehouse.native_revision import NativeRevision
from warehouse.request import BodyReader, readonly_error
from warehouse.response import Responder, summary_of
from warehouse.result_stream import STREAMABLE_KEYWORDS, ResultStream, stream_safe
from warehouse.sessions import EngineConnection, ExternalTable, create_external_tables
from warehouse.sql_text import engine_text, quote_identifier, trailing_format

if TYPE_CHECKING:
    from warehouse.server import WarehouseApp

DEFAULT_FORMAT = "TabSeparated"
# Statements whose classification is remembered (a parse of a few tenths of a millisecond,
# on the way to every answer); dashboards and models repeat their texts, with new parameters.
CLASSIFIED_STATEMENTS = 512
CLASSIFIED_TEXT_LIMIT = 8192  # longer texts are classified each time
_classified: dict[str, tuple[int, bool]] = {}


def classify(connection: EngineConnection, sql: str) -> tuple[int, bool]:
    """The statement count of ``sql`` and whether it returns rows (a read-only query)."""
    known = _classified.get(sql)
    if known is None:
        classified = connection.native.classify_query(engine_text(sql))
        known = classified["statement_count"], str(classified["query_class"]).endswith("READ_ONLY")
        if len(sql) <= CLASSIFIED_TEXT_LIMIT:
            if len(_classified) >= CLASSIFIED_STATEMENTS:  # the oldest goes (worker threads race)
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                    del _classified[next(iter(_classified))]
            _classified[sql] = known
    return known


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
        self.work = GuardedWork(app, body, self.tag)
        self.keeps_state = True  # False after SET, USE or CREATE TEMPORARY TABLE
        self.keyword = ""  # the statement's first keyword, once known
        self.sql = ""
        self.succeeded = False
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
                await inserts.stream_into(
                    self, connection, statement, table.data_format, inserts.once(table.data)
                )
        head = await inserts.read_insert_head(self.body, query_text)
        if head is not None:
            statement, output_format, data = head
            if self.read_only:
                raise readonly_error()
            await inserts.insert(self, connection, statement, output_format, data)
            return
        rest = await self.body.read_all()
        body_text = rest.decode("utf-8", "surrogateescape")  # engine_text restores the bytes
        sql = (query_text + "\n" + body_text) if query_text and rest else (query_text or body_text)
        if not sql.strip():
            raise ClickHouseError.named("EMPTY_QUERY", "Empty query")
        await self._statement(connection, sql)

    async def _statement(self, connection: EngineConnection, sql: str) -> None:
        default_format = self.params.get("default_format") or DEFAULT_FORMAT
        self.responder.take_socket()
        streams: list[ResultStream] = []
        try:
            # One trip to a worker: classification, then a streamed result's whole answer or
            # the whole statement's result.
            result = await self.work.run(
                partial(self._run, connection, sql, default_format, streams)
            )
            # A slow client's socket filled up: wait without a thread, then write on.
            while streams and not streams[0].done:
                await streams[0].wait_for_client()
                await self.work.run(streams[0].resume)
        finally:
            for stream in streams:
                await stream.release()
        if result is None:
            return
        output_format, summary, answer = result
        requested = NativeRevision.requested(self.params, output_format or "")
        if requested and answer:
            revision = NativeRevision(requested)
            if revision.wants_types(answer):
                revision.real_types = await self.app.in_thread(self.real_types, connection, sql)
            answer = revision.convert(answer, walk_all=True)
        await self.responder.start(summary, output_format)
        await self.responder.body(answer, more=False)

    def _run(
        self,
        connection: EngineConnection,
        sql: str,
        default_format: str,
        streams: list[ResultStream],
    ) -> tuple[str | None, dict[str, str], bytes] | None:
        """(worker thread) Classify and run the statement. A streamed result is answered
        here (None returned); otherwise the output format, summary and whole answer."""
        statement_count, returns_rows = classify(connection, sql)
        if statement_count > 1:
            raise ClickHouseError.named("SYNTAX_ERROR", "Multi-statements are not allowed")
        keyword = sql_text.first_keyword(sql)
        if self.read_only and not returns_rows and keyword != "SET":
            raise readonly_error()
        self.keyword, self.sql = keyword, sql
        tagged = self.tag + sql
        output_format = (trailing_format(sql) or default_format) if returns_rows else None
        streamable = keyword in STREAMABLE_KEYWORDS or sql.lstrip().startswith("(")
        if returns_rows and streamable and stream_safe(output_format or DEFAULT_FORMAT):
            streams.append(
                ResultStream(
                    self, connection, tagged, default_format, output_format or DEFAULT_FORMAT
                )
            )
            streams[0].resume()
            return None
        # DDL, SHOW, DESCRIBE, ...: small answers that chdb only runs as a whole.
        result = connection.run(tagged, default_format, self.query_params)
        self.succeeded = True
        self.keeps_state = self.keeps_state and not (
            keyword in ("SET", "USE") or (keyword == "CREATE" and "TEMPORARY" in sql.upper()[:200])
        )
        return output_format, summary_of(result, self.elapsed()), bytes(result.bytes() or b"")

    def real_types(self, connection: EngineConnection, sql: str) -> list[str]:
        """The result's column types as the engine knows them: chdb drops DateTime's time
        zone from Native headers, DESCRIBE keeps it ([] if the statement cannot be described:
        the types then stay as chdb wrote them)."""
        statement = sql_text.without_format(sql)
        return self.app.engine.describe(connection, statement, self.query_params)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

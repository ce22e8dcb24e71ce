"""The statement of one request, run on one connection, and its answer."""

from __future__ import annotations

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
from warehouse.result_stream import STREAMABLE_KEYWORDS, stream_result, stream_safe
from warehouse.sessions import EngineConnection, ExternalTable, create_external_tables
from warehouse.sql_text import engine_text, quote_identifier, trailing_format

if TYPE_CHECKING:
    from warehouse.server import WarehouseApp

DEFAULT_FORMAT = "TabSeparated"


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
        classified = connection.native.classify_query(engine_text(sql))
        if classified["statement_count"] > 1:
            raise ClickHouseError.named("SYNTAX_ERROR", "Multi-statements are not allowed")
        returns_rows = str(classified["query_class"]).endswith("READ_ONLY")
        if self.read_only and not returns_rows and sql_text.first_keyword(sql) != "SET":
            raise readonly_error()
        keyword = sql_text.first_keyword(sql)
        self.keyword, self.sql = keyword, sql
        tagged = self.tag + sql
        output_format = (trailing_format(sql) or default_format) if returns_rows else None
        streamable = keyword in STREAMABLE_KEYWORDS or sql.lstrip().startswith("(")
        if returns_rows and streamable and stream_safe(output_format or DEFAULT_FORMAT):
            await stream_result(
                self, connection, tagged, default_format, output_format or DEFAULT_FORMAT
            )
            return
        # DDL, SHOW, DESCRIBE, ...: small answers that chdb only runs as a whole.
        result = await self.work.run(
            partial(connection.run, tagged, default_format, self.query_params)
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
                revision.real_types = await self.app.in_thread(self.real_types, connection, sql)
            answer = revision.convert(answer, walk_all=True)
        await self.responder.start(summary, output_format)
        await self.responder.body(answer, more=False)

    def real_types(self, connection: EngineConnection, sql: str) -> list[str]:
        """The result's column types as the engine knows them: chdb drops DateTime's time
        zone from Native headers, DESCRIBE keeps it ([] if the statement cannot be described:
        the types then stay as chdb wrote them)."""
        statement = sql_text.without_format(sql)
        return self.app.engine.describe(connection, statement, self.query_params)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

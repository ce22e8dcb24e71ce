"""chdb connections of the embedded warehouse: a keyed pool for plain requests, and sessions.

chdb hosts one engine per process; any number of connections to its data directory may be
open, each with its own current database and settings, and queries on different connections
run in parallel (chdb releases the GIL). A connection runs one statement at a time.

* Plain requests borrow a pooled connection, preferably one whose database and settings
  already match (clickhouse-connect sends the same settings on every call, so a match is the
  norm); otherwise a new one is opened (a few milliseconds, once per kind of request), and
  only with the pool full is an idle one adjusted with ``USE``/``SET``. A statement that changes
  connection state behind our back (``SET``, ``USE``, temporary tables) retires its
  connection instead of returning it, because outside a session ClickHouse forgets such
  state after the query.
* A ``session_id`` owns one connection for its lifetime; ``USE``, ``SET`` and temporary
  tables persist across its requests, while a request's URL ``database`` and settings apply
  to that request only (ClickHouse runs each query in a copy of the session's context). The
  session remembers its own database and settings; each request sets the connection to
  those plus its URL overrides, changing only what differs. A second concurrent request on a
  busy session is refused with SESSION_IS_LOCKED, as ClickHouse does; idle sessions are
  reaped after their timeout.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import chdb

from warehouse.http_protocol import ClickHouseError
from warehouse.sql_text import engine_text, quote_identifier, quote_string, split_top_level

log = logging.getLogger(__name__)

MAX_SESSION_TIMEOUT_S = 3600  # ClickHouse's default max_session_timeout

# Server settings the engine starts with (chdb reads them from the connection string) where
# chdb's defaults differ from a ClickHouse server's. chdb runs merges and mutations on 2
# background threads, a server on 16; every lightweight DELETE mutates each part of its table
# through that pool, so on 2 threads the incremental models' deletes waited seconds behind
# merges (docs/decisions/0049).
ENGINE_SERVER_SETTINGS = {"background_pool_size": "16"}


def engine_path(data_dir: str) -> str:
    """The connection string of the engine on ``data_dir``, with ENGINE_SERVER_SETTINGS."""
    return f"{data_dir}?{urlencode(ENGINE_SERVER_SETTINGS)}"


def engine_params(params: dict | None) -> dict[str, str]:
    """Bound query parameters for chdb, which takes them as UTF-8 text only.

    ClickHouse reads a parameter value as an escaped (TSV) field, so a byte that is not
    UTF-8 (a surrogate after surrogateescape) goes in as its ``\\xHH`` escape and arrives
    as that very byte."""
    return {name: _escape_raw_bytes(str(value)) for name, value in (params or {}).items()}


def _escape_raw_bytes(value: str) -> str:
    if value.isascii():
        return value
    return _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02X}", value)


_SURROGATE = re.compile("[\udc80-\udcff]")


class EngineConnection:
    """One chdb connection and the state this module put on it."""

    def __init__(self, path: str) -> None:
        # Keep the Python wrapper alive: dropping it closes the native connection.
        self._wrapper = chdb.connect(path)
        self.native: Any = self._wrapper._conn
        self.database = "default"
        self.settings: dict[str, str] = {}
        self.last_used = time.monotonic()

    def run(self, sql: str, output_format: str = "TabSeparated", params: dict | None = None) -> Any:
        try:
            return self.native.query(engine_text(sql), output_format, params=engine_params(params))
        except RuntimeError as error:
            raise ClickHouseError.from_engine(error) from None

    def use_database(self, database: str) -> None:
        if database and database != self.database:
            self.run(f"USE {quote_identifier(database)}")
            self.database = database

    def apply_settings(self, settings: dict[str, str]) -> None:
        """Make the request's settings the connection's: SET what differs, reset the rest."""
        for name in [n for n in self.settings if n not in settings]:
            self.run(f"SET {quote_identifier(name)} = DEFAULT")
            del self.settings[name]
        for name, value in settings.items():
            if self.settings.get(name) != value:
                # A string literal converts to any setting type, like a URL parameter does.
                self.run(f"SET {quote_identifier(name)} = {quote_string(value)}")
                self.settings[name] = value

    def refresh_database(self) -> None:
        self.database = bytes(self.run("SELECT currentDatabase()").bytes()).decode().strip()

    def read_settings(self, names: list[str]) -> dict[str, str]:
        """The current values of ``names`` on this connection (after a SET statement)."""
        if not names:
            return {}
        rows = self.run(
            "SELECT name, value FROM system.settings WHERE name IN {names:Array(String)}",
            "TabSeparatedRaw",
            {"names": "[" + ", ".join(quote_string(n) for n in names) + "]"},
        )
        text = bytes(rows.bytes()).decode("utf-8", "surrogateescape")
        return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._wrapper.close()


@dataclass(frozen=True)
class ExternalTable:
    """A file part of a multipart request: a temporary table for the query to read."""

    name: str
    data: bytes
    data_format: str
    structure: str

    @classmethod
    def from_request(cls, name: str, data: bytes, params: dict[str, str]) -> ExternalTable:
        """Take ``<name>_format``, ``<name>_structure`` or ``<name>_types`` out of ``params``
        (they describe the table; they are not settings)."""
        data_format = params.pop(f"{name}_format", "TabSeparated")
        structure = params.pop(f"{name}_structure", "")
        types = params.pop(f"{name}_types", "")
        if not structure and types:
            structure = ", ".join(
                f"_{i} {t.strip()}" for i, t in enumerate(split_top_level(types), 1)
            )
        if not structure:
            raise ClickHouseError.named(
                "BAD_ARGUMENTS", f"Neither structure nor types were given for external table {name}"
            )
        return cls(name, data, data_format, structure)


def create_external_tables(connection: EngineConnection, tables: list[ExternalTable]) -> None:
    """Create the (empty) temporary tables; their data goes in as an INSERT of each."""
    for table in tables:
        name = quote_identifier(table.name)
        connection.run(f"CREATE TEMPORARY TABLE {name} ({table.structure}) ENGINE = Memory")


def drop_external_tables(connection: EngineConnection, tables: list[ExternalTable]) -> None:
    for table in tables:
        with contextlib.suppress(ClickHouseError):
            connection.run(f"DROP TEMPORARY TABLE IF EXISTS {quote_identifier(table.name)}")


@dataclass
class Session:
    session_id: str
    connection: EngineConnection
    timeout_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    # The session's own state (USE and SET statements); URL parameters never change it.
    database: str = "default"
    settings: dict[str, str] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        return now - self.last_used > self.timeout_s

    def prepare(self, database: str, overrides: dict[str, str]) -> None:
        """Set the connection to the session's state plus one request's URL overrides."""
        self.connection.use_database(database or self.database)
        self.connection.apply_settings({**self.settings, **overrides})

    def remember_use(self) -> None:
        """After a USE statement: the connection's database becomes the session's."""
        self.connection.refresh_database()
        self.database = self.connection.database

    def remember_set(self, names: list[str]) -> None:
        """After a SET statement: the values it gave ``names`` become the session's."""
        values = self.connection.read_settings(names)
        self.settings.update(values)
        self.connection.settings.update(values)


class Engine:
    """The chdb engine of one data directory, its connection pool and its sessions."""

    def __init__(
        self,
        data_dir: str,
        *,
        session_timeout_s: float = 60.0,
        max_idle_connections: int = 32,
        idle_connection_ttl_s: float = 120.0,
    ) -> None:
        self.path = engine_path(data_dir)
        # The anchor keeps the engine open while pooled connections come and go, and runs
        # KILL QUERY for cancelled requests.
        self._anchor = EngineConnection(self.path)
        self._anchor_lock = threading.Lock()
        self._lock = threading.Lock()
        self._idle: list[EngineConnection] = []  # least recently used first
        self._sessions: dict[str, Session] = {}
        self.session_timeout_s = session_timeout_s
        self.max_idle_connections = max_idle_connections
        self.idle_connection_ttl_s = idle_connection_ttl_s
        self.timezone, self.version = (
            bytes(self._anchor.run("SELECT timezone(), version()").bytes())
            .decode()
            .strip()
            .split("\t")
        )
        self.closed = False

    # --- plain requests -----------------------------------------------------------------
    def take_idle(self, database: str, settings: dict[str, str]) -> EngineConnection | None:
        """An idle connection already set to ``database`` and ``settings`` (no engine call)."""
        database = database or "default"
        with self._lock:
            for index in range(len(self._idle) - 1, -1, -1):
                candidate = self._idle[index]
                if candidate.database == database and candidate.settings == settings:
                    return self._idle.pop(index)
        return None

    def acquire(self, database: str, settings: dict[str, str]) -> EngineConnection:
        """A connection set to ``database`` and ``settings``: a new one (a few milliseconds),
        or with the pool full its least recently used one adjusted with a few SETs."""
        connection = self.take_idle(database, settings)
        if connection is not None:
            return connection
        # Adjusting an idle connection of other settings would repeat those SETs (and a trip
        # to a worker) on every request while clients with different settings take turns.
        with self._lock:
            full = len(self._idle) >= self.max_idle_connections
            connection = self._idle.pop(0) if full else None
        connection = connection or EngineConnection(self.path)
        try:
            connection.use_database(database or "default")
            connection.apply_settings(settings)
        except BaseException:
            connection.close()
            raise
        return connection

    def give_back(self, connection: EngineConnection) -> EngineConnection | None:
        """Pool a connection whose state is as this module left it; return the connection
        to close (the least recently used one when the pool is full)."""
        if self.closed:
            return connection
        connection.last_used = time.monotonic()
        with self._lock:
            self._idle.append(connection)
            if len(self._idle) > self.max_idle_connections:
                return self._idle.pop(0)
        return None

    # --- sessions -----------------------------------------------------------------------
    def lock_session(self, session_id: str, timeout_s: float | None, must_exist: bool) -> Session:
        """The session, locked for this request (created unless ``must_exist``)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                if must_exist:
                    raise ClickHouseError.named(
                        "SESSION_NOT_FOUND", f"Session {session_id} not found"
                    )
                session = Session(
                    session_id, EngineConnection(self.path), timeout_s or self.session_timeout_s
                )
                self._sessions[session_id] = session
            if not session.lock.acquire(blocking=False):
                raise ClickHouseError.named(
                    "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client"
                )
            if timeout_s:
                session.timeout_s = timeout_s
            session.last_used = time.monotonic()
            return session

    def unlock_session(self, session: Session) -> None:
        session.last_used = time.monotonic()
        session.lock.release()

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def describe(
        self, connection: EngineConnection, statement: str, params: dict[str, str]
    ) -> list[str]:
        """The column types of ``statement``'s result ([] if it cannot be described)."""
        # On a connection of its own: a statement on the streaming one would end its stream.
        # (A session's temporary tables are not seen there; their types stay as chdb wrote.)
        helper = self.acquire(connection.database, connection.settings)
        try:
            described = helper.run(f"DESCRIBE ({statement})", "TabSeparatedRaw", params)
        except ClickHouseError:
            return []
        finally:
            retired = self.give_back(helper)
            if retired is not None:
                retired.close()
        lines = bytes(described.bytes()).decode("utf-8", "surrogateescape").splitlines()
        return [line.split("\t")[1] for line in lines if "\t" in line]

    # --- housekeeping -------------------------------------------------------------------
    def reap(self) -> int:
        """Close expired idle sessions and long-idle pooled connections; return sessions closed."""
        now = time.monotonic()
        to_close: list[EngineConnection] = []
        with self._lock:
            for session_id, session in list(self._sessions.items()):
                if session.expired(now) and session.lock.acquire(blocking=False):
                    del self._sessions[session_id]
                    to_close.append(session.connection)
            reaped_sessions = len(to_close)
            fresh = [c for c in self._idle if now - c.last_used <= self.idle_connection_ttl_s]
            to_close.extend(c for c in self._idle if now - c.last_used > self.idle_connection_ttl_s)
            self._idle = fresh
        for connection in to_close:
            connection.close()
        if reaped_sessions:
            log.info("reaped %d expired session(s)", reaped_sessions)
        return reaped_sessions

    def kill(self, tag: str, wait: bool = True) -> bool:
        """Cancel the running statements whose text starts with ``tag``, waiting for them to
        end unless ``wait`` is False; return whether there was one."""
        sql = f"KILL QUERY WHERE startsWith(query, {{tag:String}}) {'SYNC' if wait else 'ASYNC'}"
        if wait:
            with self._anchor_lock, contextlib.suppress(ClickHouseError):
                return bool(bytes(self._anchor.run(sql, params={"tag": tag}).bytes()).strip())
            return False
        # An asynchronous kill returns at once; on a pooled connection, several run in parallel
        # instead of queueing for the anchor.
        connection = self.take_idle("default", {}) or self.acquire("default", {})
        try:
            return bool(bytes(connection.run(sql, params={"tag": tag}).bytes()).strip())
        except ClickHouseError:
            return False
        finally:
            retired = self.give_back(connection)
            if retired is not None:
                retired.close()

    def close(self) -> None:
        """Close every connection; the engine shuts down with the last one (flushing data)."""
        with self._lock:
            self.closed = True
            connections = self._idle + [s.connection for s in self._sessions.values()]
            self._idle = []
            self._sessions.clear()
        for connection in connections:
            connection.close()
        self._anchor.close()

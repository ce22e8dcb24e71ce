"""Engine, sessions and migrations of the metadata database.

The database is an SQLite file in the data directory by default and PostgreSQL (or any
SQLAlchemy URL) through ``TRACKHOUSE_DATABASE_URL``. Schema changes are Alembic migrations in
``accounts/migrations/``; ``upgrade()`` applies them programmatically, so no ``alembic.ini`` is
needed and every entry point can call it on start.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from trackhouse.secure_files import private_sqlite
from trackhouse.settings import Settings, get_settings

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
# Alembic narrates every context it opens at INFO; upgrade() logs what matters itself.
# (Alembic is imported lazily, so processes that only read accounts do not load it.)
if logging.getLogger("alembic").level == logging.NOTSET:
    logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Not Alembic's default name: Dagster also keeps an ``alembic_version`` table, and both may
# share one PostgreSQL database.
VERSION_TABLE = "trackhouse_alembic_version"

_engines: dict[str, Engine] = {}
_session_factories: dict[str, sessionmaker[Session]] = {}
_engines_lock = threading.Lock()
_upgrade_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """Use the installed psycopg 3 driver for bare ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # SQLite ignores foreign keys unless asked, per connection. (WAL is set once, by upgrade():
    # it is stored in the file, and switching to it needs an exclusive lock that a connection
    # opened while another process migrates a fresh file would not get: "database is locked".)
    cursor.execute("pragma foreign_keys = on")
    cursor.close()


def _build_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            private_sqlite(Path(database))  # users' hashes, clients: 0600 (also when it exists)
        engine = create_engine(
            url,
            # Pooled connections move between the collector's threads, one thread at a time.
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def database_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return normalize_url(settings.effective_database_url)


def _engine_and_factory(settings: Settings | None) -> tuple[Engine, sessionmaker[Session]]:
    url = database_url(settings)
    with _engines_lock:
        existing = _engines.get(url)
        if existing is None:
            existing = _engines[url] = _build_engine(url)
            # Objects stay readable after the session that loaded them is closed (the
            # dashboards and the CLI use results outside the ``with`` block).
            _session_factories[url] = sessionmaker(existing, expire_on_commit=False)
        return existing, _session_factories[url]


def engine(settings: Settings | None = None) -> Engine:
    """The engine for the configured database URL, created once per URL and process."""
    return _engine_and_factory(settings)[0]


def safe_url(settings: Settings | None = None) -> str:
    """The database URL with any password masked, for messages and logs."""
    return make_url(database_url(settings)).render_as_string(hide_password=True)


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (tests, forked processes)."""
    with _engines_lock:
        for cached in _engines.values():
            cached.dispose()
        _engines.clear()
        _session_factories.clear()


@contextlib.contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = _engine_and_factory(settings)[1]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(settings: Settings | None = None) -> Config:
    """An Alembic configuration built in code (``script_location`` and URL from settings)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ``%`` would be read as interpolation by configparser (passwords may contain it).
    config.set_main_option("sqlalchemy.url", database_url(settings).replace("%", "%%"))
    return config


def _head_revisions(config: Config) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(config).get_heads())


def current_revisions(settings: Settings | None = None) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with engine(settings).connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return set(context.get_current_heads())


@contextlib.contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """Serialise concurrent ``upgrade()`` calls on one SQLite file across processes.

    (PostgreSQL takes an advisory lock inside the migration transaction instead; see env.py.)
    """
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: no advisory file locks; concurrent first starts are rare
        yield
        return
    lock_path = Path(database + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(settings: Settings | None = None) -> None:
    """Apply every pending migration (``alembic upgrade head``); cheap when already at head."""
    from alembic import command

    config = alembic_config(settings)
    heads = _head_revisions(config)
    if current_revisions(settings) == heads:
        return
    url = database_url(settings)
    # Alembic keeps its running context in module globals, so one upgrade per process at a
    # time; other processes are held off by the file lock (SQLite) or advisory lock (env.py).
    with _upgrade_lock, _sqlite_file_lock(url), engine(settings).connect() as connection:
        if connection.dialect.name == "sqlite":
            # WAL lets the collector read clients while the CLI or the dashboards write.
            connection.exec_driver_sql("pragma journal_mode = wal")
        config.attributes["connection"] = connection
        log.info("upgrading the metadata database to %s", ", ".join(sorted(heads)))
        command.upgrade(config, "head")
        connection.commit()

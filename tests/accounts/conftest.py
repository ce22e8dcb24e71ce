"""Every accounts test runs on both metadata backends: an SQLite file and a throwaway
PostgreSQL database on the local server (created here, dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from accounts.auth import reset_auth_cache
from accounts.db import dispose_engines, session_scope, upgrade
from trackhouse.settings import Settings, get_settings

POSTGRES_ADMIN_URL = os.environ.get(
    "TRACKHOUSE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")


@contextmanager
def _throwaway_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of a new, empty database of this backend, removed on exit."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'accounts-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"trackhouse_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'create database "{name}"'))
        try:
            yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(
                hide_password=False)
        finally:
            dispose_engines()  # pooled connections would block the drop
            with admin.connect() as connection:
                connection.execute(text(f'drop database if exists "{name}" with (force)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend_url(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per backend for the session; tests use unique ids so they never clash."""
    with _throwaway_database(request.param, tmp_path_factory.mktemp("accounts-db")) as url:
        yield url


@pytest.fixture
def throwaway_database():
    """``with throwaway_database('postgresql', folder) as url:`` a fresh, empty database."""
    return _throwaway_database


@pytest.fixture
def use_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Point the process settings at a database URL (and drop caches that hold the old one)."""

    def use(url: str, **env: str) -> Settings:
        monkeypatch.setenv("TRACKHOUSE_DATABASE_URL", url)
        # A cheaper argon2 keeps the suite fast; test_hashing checks the real defaults.
        monkeypatch.setenv("TRACKHOUSE_SECRET_HASH_TIME_COST", "1")
        monkeypatch.setenv("TRACKHOUSE_SECRET_HASH_MEMORY_KIB", "8192")
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        reset_auth_cache()
        return get_settings()

    yield use
    get_settings.cache_clear()
    reset_auth_cache()


@pytest.fixture
def accounts_db(backend_url: str, use_database) -> Settings:
    """The settings of a migrated database of the current backend."""
    settings = use_database(backend_url)
    upgrade()
    return settings


@pytest.fixture
def session(accounts_db: Settings) -> Iterator[Session]:
    with session_scope() as open_session:
        yield open_session


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique():
    """``unique('shop')`` -> 'shop-1a2b3c4d': ids no other test uses (databases live for the
    whole session)."""
    return _unique

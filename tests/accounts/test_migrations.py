"""Alembic migrations apply to an empty database, again without effect, and concurrently."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from accounts.db import VERSION_TABLE, current_revisions, engine, upgrade
from accounts.models import Base
from trackhouse.settings import PROJECT_ROOT


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_from_scratch_then_again(backend: str, tmp_path: Path, use_database,
                                        throwaway_database) -> None:
    with throwaway_database(backend, tmp_path) as url:
        use_database(url)
        assert current_revisions() == set()
        upgrade()
        tables = set(inspect(engine()).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert VERSION_TABLE in tables
        heads = current_revisions()
        assert heads == {"0008"}
        upgrade()  # at head: a no-op, not an error
        assert current_revisions() == heads
        # the migrations build exactly what the models describe (a model change without a
        # migration fails here)
        with engine().connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "compare_type": True})
            assert compare_metadata(context, Base.metadata) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_first_upgrades_do_not_collide(backend: str, tmp_path: Path,
                                                  use_database, throwaway_database) -> None:
    """`trackhouse up` starts several processes that each upgrade the database on start."""
    with throwaway_database(backend, tmp_path) as url:
        use_database(url)
        env = {**os.environ, "TRACKHOUSE_DATABASE_URL": url}
        processes = [
            subprocess.Popen([sys.executable, "-c", "from accounts.db import upgrade; upgrade()"],
                             env=env, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outcomes = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in processes]
        assert outcomes == [(0, "")] * 2
        assert current_revisions() == {"0008"}
        # and within one process, threads (Streamlit, the collector's pool) may call it too
        threads = [threading.Thread(target=upgrade) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)

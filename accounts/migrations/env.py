"""Alembic environment of the metadata database, driven from code (see ``accounts.db``).

``accounts.db.upgrade()`` passes an open connection in ``config.attributes["connection"]``;
the ``alembic`` command line (``alembic -c accounts/alembic.ini ...``) connects by itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

from accounts.db import VERSION_TABLE, database_url
from accounts.models import Base

# Any fixed 64-bit number: the key of the PostgreSQL advisory lock that serialises
# concurrent upgrades (several processes of `trackhouse up` start at once).
_PG_LOCK_KEY = 7_303_865_517_206_541_877


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("select pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or database_url()
    with create_engine(url).connect() as own_connection:
        _run(own_connection)


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()

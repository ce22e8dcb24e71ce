"""Backup and restore of a Trackhouse installation: warehouse, metadata database, Dagster.

``backup(DIR)`` writes, while the stack runs:

- ``warehouse/<database role>/<table>.sql``: each table's and view's CREATE statement, and
  ``<table>.NNNN.native.zst``: its rows in ClickHouse's Native format, zstd-compressed, in
  slices of about 256 MB uncompressed (a large table's rows split by a hash of the row). The dbt
  tables are read first and the raw tables last, so the raw tables hold every row the models
  had seen; the first incremental run after a restore catches up with the rest. (chdb serves
  ``BACKUP``/``RESTORE`` only with a server configuration naming a backup disk or path, which
  the embedded warehouse has no place for; the same dump works against a ClickHouse server.)
- ``metadata/trackhouse.db``: the SQLite metadata database, through SQLite's online backup
  (PostgreSQL metadata is backed up with ``pg_dump``, not here);
- ``dagster/``: DAGSTER_HOME, its SQLite files through the online backup too;
- ``manifest.json``: when, the database names, rows and bytes per table.

``restore(DIR)`` brings an empty installation (fresh data directory, empty warehouse) to that
state under the current settings' database names. Files are readable by the owner only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard
from clickhouse_connect.driver.client import Client
from sqlalchemy.engine import make_url

from trackhouse.settings import Settings, get_settings
from warehouse.client import warehouse

FORMAT_VERSION = 1
CHUNK = 1 << 20
# uncompressed Native bytes per backup file: one restore insert each, well under the embedded
# warehouse's request-body cap (TRACKHOUSE_WAREHOUSE_MAX_BODY_BYTES, 1 GiB)
SLICE_BYTES = 256 << 20
# a restored table is one insert, which may hold every partition of the table
RESTORE_SETTINGS = {"max_partitions_per_insert_block": 0, "max_insert_block_size": 1_048_576}
VIEW_ENGINES = ("View", "MaterializedView")
Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why."""


def _roles(settings: Settings) -> dict[str, str]:
    """Role -> database name; a backup stores roles, a restore maps them to its own names."""
    analytics = settings.analytics_database
    return {"staging": f"{analytics}_staging", "intermediate": f"{analytics}_intermediate",
            "marts": analytics, "raw": settings.raw_database}


@contextmanager
def _private_files() -> Iterator[None]:
    """Everything written meanwhile is the owner's only (0600 files, 0700 directories)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite file (its writers keep going)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, \
            sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _copy_tree(source: Path, target: Path) -> int:
    """Copy a directory, SQLite files through the online backup; return the bytes copied."""
    copied = 0
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        destination = target / relative
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        if path.name.endswith(("-wal", "-shm", "-journal")) or path.name.startswith("."):
            continue  # the online backup of the .db file carries them
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".db":
            _copy_sqlite(path, destination)
        else:
            shutil.copyfile(path, destination)
        copied += destination.stat().st_size
    return copied


@dataclass(frozen=True)
class _Relation:
    role: str
    database: str
    name: str
    engine: str
    create: str

    @property
    def ref(self) -> str:
        return f"`{self.database}`.`{self.name}`"

    @property
    def has_rows(self) -> bool:
        return self.engine not in VIEW_ENGINES and self.engine != "Memory"


def _relations(client: Client, settings: Settings) -> list[_Relation]:
    roles = _roles(settings)
    role_of = {database: role for role, database in roles.items()}
    rows = client.query(
        "select database, name, engine, create_table_query from system.tables "
        "where database in {dbs:Array(String)} and not is_temporary "
        "and not startsWith(name, '.inner')",
        parameters={"dbs": list(roles.values())},
    ).result_rows
    order = list(roles)
    relations = [_Relation(role_of[db], db, name, engine, create)
                 for db, name, engine, create in rows]
    return sorted(relations, key=lambda r: (order.index(r.role), r.name))


def backup(target: Path, *, settings: Settings | None = None, client: Client | None = None,
           progress: Progress = print) -> dict[str, Any]:
    """Write a backup of the running installation into ``target`` (new or empty)."""
    settings = settings or get_settings()
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: back up into a new directory")
    own = client is None
    client = client or warehouse(settings)
    started = time.monotonic()
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION, "started_at": datetime.now(UTC).isoformat(),
        "databases": _roles(settings), "tables": [],
    }
    try:
        with _private_files():
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o700)
            for relation in _relations(client, settings):
                manifest["tables"].append(_dump(client, relation, target, progress))
            metadata = _sqlite_path(settings)
            if metadata is not None and metadata.exists():
                _copy_sqlite(metadata, target / "metadata" / "trackhouse.db")
                manifest["metadata"] = {"file": "metadata/trackhouse.db",
                                        "bytes": (target / "metadata/trackhouse.db").stat().st_size}
                progress(f"metadata: {manifest['metadata']['bytes']:,} bytes")
            elif metadata is None:
                progress("metadata: a PostgreSQL database; back it up with pg_dump")
            home = settings.effective_dagster_home
            if settings.dagster_postgres_url is None and home.exists():
                manifest["dagster"] = {"bytes": _copy_tree(home, target / "dagster")}
                progress(f"dagster: {manifest['dagster']['bytes']:,} bytes")
            manifest["seconds"] = round(time.monotonic() - started, 3)
            manifest["bytes"] = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
            (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    finally:
        if own:
            client.close()
    return manifest


def _dump(client: Client, relation: _Relation, target: Path, progress: Progress) -> dict:
    folder = target / "warehouse" / relation.role
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{relation.name}.sql").write_text(relation.create + "\n")
    entry: dict[str, Any] = {"role": relation.role, "name": relation.name,
                             "engine": relation.engine, "rows": 0, "bytes": 0}
    if not relation.has_rows:
        return entry
    started = time.monotonic()
    [(uncompressed,)] = client.query(
        "select sum(data_uncompressed_bytes) from system.parts where database = {d:String} "
        "and table = {t:String} and active",
        parameters={"d": relation.database, "t": relation.name}).result_rows
    # Each file is restored as one insert: a large table is split into slices (by a hash of
    # the whole row, so a row lands in exactly one) that fit a request body comfortably.
    slices = max(1, -(-int(uncompressed or 0) // SLICE_BYTES))
    hashed = ", ".join(f"`{name}`" for (name,) in client.query(
        "select name from system.columns where database = {d:String} and table = {t:String} "
        # partial states do not hash, and a NULL makes the whole hash NULL
        "and not startsWith(type, 'AggregateFunction') and not startsWith(type, 'Nullable')",
        parameters={"d": relation.database, "t": relation.name}).result_rows)
    if not hashed:
        slices = 1
    files = []
    for number in range(slices):
        where = f" where sipHash64({hashed}) % {slices} = {number}" if slices > 1 else ""
        path = folder / f"{relation.name}.{number:04d}.native.zst"
        compressor = zstandard.ZstdCompressor(level=3)
        stream = client.raw_stream(f"select * from {relation.ref}{where} format Native")
        with path.open("wb") as file, compressor.stream_writer(file) as writer:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
        files.append(path)
    [(rows,)] = client.query(f"select count() from {relation.ref}").result_rows
    entry.update(rows=int(rows), bytes=sum(f.stat().st_size for f in files),
                 files=[str(f.relative_to(target)) for f in files])
    progress(f"warehouse: {relation.database}.{relation.name}: {int(rows):,} rows, "
             f"{entry['bytes']:,} bytes, {time.monotonic() - started:.1f} s")
    return entry


def _rename(create: str, names: dict[str, str]) -> str:
    """A CREATE statement with the backup's database names replaced by this installation's."""
    for old in sorted(names, key=len, reverse=True):
        create = re.sub(rf"(?<![\w.]){re.escape(old)}(?=[`.])", names[old], create)
        create = create.replace(f"`{old}`.", f"`{names[old]}`.")
    return create


def restore(source: Path, *, settings: Settings | None = None, client: Client | None = None,
            progress: Progress = print) -> dict[str, Any]:
    """Bring an empty installation back to the state of the backup in ``source``."""
    settings = settings or get_settings()
    source = Path(source)
    manifest_path = source / "manifest.json"
    if not manifest_path.exists():
        raise BackupError(f"{source} holds no Trackhouse backup (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT_VERSION}")
    roles = _roles(settings)
    names = {manifest["databases"][role]: roles[role] for role in roles}
    own = client is None
    client = client or warehouse(settings)
    started = time.monotonic()
    try:
        [(existing,)] = client.query(
            "select count() from system.tables where database in {dbs:Array(String)}",
            parameters={"dbs": list(roles.values())}).result_rows
        if existing:
            raise BackupError(
                f"the warehouse already holds {existing} table(s) in {', '.join(roles.values())}: "
                "restore into an empty warehouse (a fresh data directory)")
        metadata = _sqlite_path(settings)
        if "metadata" in manifest:
            if metadata is None:
                raise BackupError("the backup's metadata is SQLite, but this installation uses "
                                  "PostgreSQL (TRACKHOUSE_DATABASE_URL)")
            if metadata.exists() and metadata.stat().st_size:
                raise BackupError(f"{metadata} exists: restore into a fresh data directory")
        for database in roles.values():
            client.command(f"create database if not exists `{database}`")
        tables = [t for t in manifest["tables"] if t["engine"] not in VIEW_ENGINES]
        views = [t for t in manifest["tables"] if t["engine"] in VIEW_ENGINES]
        for entry in tables:
            _load(client, source, entry, roles, names, progress)
        _create_views(client, source, views, roles, names)
        with _private_files():
            if "metadata" in manifest and metadata is not None:
                metadata.parent.mkdir(parents=True, exist_ok=True)
                _copy_sqlite(source / manifest["metadata"]["file"], metadata)
                progress(f"metadata: restored to {metadata}")
            if "dagster" in manifest:
                home = settings.effective_dagster_home
                _copy_tree(source / "dagster", home)
                progress(f"dagster: restored to {home}")
    finally:
        if own:
            client.close()
    return {"seconds": round(time.monotonic() - started, 3),
            "rows": sum(t["rows"] for t in manifest["tables"])}


def _load(client: Client, source: Path, entry: dict[str, Any], roles: dict[str, str],
          names: dict[str, str], progress: Progress) -> None:
    database = roles[entry["role"]]
    create = (source / "warehouse" / entry["role"] / f"{entry['name']}.sql").read_text()
    client.command(_rename(create, names))
    if not entry.get("files"):
        return
    started = time.monotonic()
    for name in entry["files"]:
        with (source / name).open("rb") as file:
            # the file is zstd already: sent as it is, with Content-Encoding: zstd
            client.raw_insert(f"`{database}`.`{entry['name']}`", insert_block=file,
                              fmt="Native", compression="zstd", settings=RESTORE_SETTINGS)
    progress(f"warehouse: {database}.{entry['name']}: {entry['rows']:,} rows, "
             f"{time.monotonic() - started:.1f} s")


def _create_views(client: Client, source: Path, views: list[dict[str, Any]],
                  roles: dict[str, str], names: dict[str, str]) -> None:
    """Views read other views: create them in rounds until each one's inputs exist."""
    waiting = list(views)
    while waiting:
        failed = []
        for entry in waiting:
            create = (source / "warehouse" / entry["role"] / f"{entry['name']}.sql").read_text()
            try:
                client.command(_rename(create, names))
            except Exception as error:  # an input view not created yet
                failed.append((entry, error))
        if len(failed) == len(waiting):
            raise BackupError(f"views could not be created: {failed[0][1]}")
        waiting = [entry for entry, _ in failed]

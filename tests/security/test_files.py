"""Local state is its owner's alone: the data directory 0700, the metadata database and the
secret files 0600, whatever the umask, on creation and after an upgrade from looser modes."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts import db
from trackhouse.secure_files import read_or_create_secret, secure_state
from trackhouse.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default: files 0644, directories 0755
    try:
        yield
    finally:
        os.umask(previous)


def sqlite_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'trackhouse.db'}",
                    clickhouse_password="unused")  # type: ignore[arg-type]


def test_new_metadata_database_and_secrets_are_private(tmp_path: Path, loose_umask) -> None:
    data_dir = tmp_path / "data"
    settings = sqlite_settings(data_dir)
    db.upgrade(settings)  # creates the SQLite file (WAL mode: -wal and -shm beside it)
    try:
        database = data_dir / "trackhouse.db"
        assert mode(database) == 0o600
        for companion in ("trackhouse.db-wal", "trackhouse.db-shm"):
            if (data_dir / companion).exists():
                assert mode(data_dir / companion) == 0o600
        password = read_or_create_secret(data_dir / "warehouse-password")
        assert mode(data_dir / "warehouse-password") == 0o600
        assert mode(data_dir) == 0o700
        assert read_or_create_secret(data_dir / "warehouse-password") == password
    finally:
        db.dispose_engines()


def test_an_existing_installation_is_fixed_on_start(tmp_path: Path, loose_umask) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    secret = data_dir / "warehouse-password"
    secret.write_text("made-by-an-older-version\n")
    database = data_dir / "trackhouse.db"
    database.touch()
    wal = data_dir / "trackhouse.db-wal"
    wal.touch()
    for path in (data_dir, secret, database, wal):
        path.chmod(0o755 if path.is_dir() else 0o644)
    # `trackhouse up` secures the directory and the secrets; every process opening the
    # metadata database secures that
    secure_state(data_dir, [secret])
    try:
        db.engine(sqlite_settings(data_dir))
        assert (mode(data_dir), mode(secret), mode(database), mode(wal)) == (
            0o700, 0o600, 0o600, 0o600)
        assert read_or_create_secret(secret) == "made-by-an-older-version"
    finally:
        db.dispose_engines()


def test_concurrent_first_starts_agree_on_one_password(tmp_path: Path) -> None:
    path = tmp_path / "data" / "warehouse-password"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        results.append(read_or_create_secret(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and results[0] == path.read_text().strip()
    assert [p.name for p in path.parent.iterdir()] == ["warehouse-password"]  # no leftovers


def test_a_shared_sticky_directory_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    read_or_create_secret(shared / "warehouse-password")
    assert mode(shared) == 0o1777
    assert mode(shared / "warehouse-password") == 0o600

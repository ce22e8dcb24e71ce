"""Local state is readable by its owner only: the data directory 0700, the metadata database
and every secret file 0600, whatever the umask, on creation and again at every start (so an
installation made before this rule is fixed by its next start).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
# files SQLite keeps beside a database; they carry its contents too
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_directory(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; make ``path`` itself 0700 (unless it is a
    shared sticky directory such as /tmp, which a data directory should never be)."""
    path.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
    mode = path.stat().st_mode
    if stat.S_IMODE(mode) != DIRECTORY_MODE and not mode & stat.S_ISVTX:
        path.chmod(DIRECTORY_MODE)
    return path


def private_file(path: Path, *, create: bool = False) -> None:
    """Make ``path`` 0600 (creating it empty, never readable by others, when ``create``)."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            path.chmod(FILE_MODE)


def private_sqlite(database: Path) -> None:
    """An SQLite database and its journal files, 0600; the file is created before SQLite
    opens it (SQLite would create it with the umask's mode, usually 0644)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    private_file(database, create=True)
    for suffix in SQLITE_COMPANIONS:
        private_file(database.with_name(database.name + suffix))


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """The secret stored in ``path``; generated (URL-safe, ``nbytes`` random bytes) if the file
    does not exist. Concurrent first starts agree on one value: it is written to a private
    temporary file and hard-linked into place, so ``path`` never exists half-written."""
    private_directory(path.parent)
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        private_file(path)
        return existing
    staged = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes) + "\n")
        with contextlib.suppress(FileExistsError):  # another process won the race: use its
            os.link(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    private_file(path)
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty: delete it and a new secret is generated")
    return value


def secure_state(data_dir: Path, files: list[Path]) -> None:
    """At start: the data directory 0700, each of ``files`` that exists 0600."""
    private_directory(data_dir)
    for path in files:
        private_file(path)

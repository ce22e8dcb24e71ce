"""Run one import for a project: the client that sends, the checkpoints, the engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from importers.checkpoints import DatabaseCheckpoints
from importers.engine import ImportFailed, Outcome, Progress, Sender, Source, Target, run_import


@dataclass
class Options:
    collector_url: str
    client_id: str | None = None
    client_secret: str | None = None
    chunk_size: int = 5_000
    concurrency: int = 4
    max_rate: float = 0
    restart: bool = False


@contextmanager
def import_target(project_id: str, options: Options) -> Iterator[Target]:
    """The given client, or a write client of the project made for this run (its secret
    lives only in this process) and revoked when the run ends."""
    from accounts import service
    from accounts.db import session_scope, upgrade
    from accounts.errors import AccountsError

    upgrade()
    if options.client_id:
        if not options.client_secret:
            raise ImportFailed("--client-id needs the client's secret (--client-secret or "
                               "TRACKHOUSE_IMPORT_CLIENT_SECRET)")
        yield Target(options.collector_url, options.client_id, options.client_secret)
        return
    try:
        with session_scope() as session:
            client, secret = service.create_client(session, project_id=project_id,
                                                   name="history import (temporary)")
            client_id = client.id
    except AccountsError as error:
        raise ImportFailed(error.message) from None
    assert secret is not None
    try:
        yield Target(options.collector_url, client_id, secret)
    finally:
        with session_scope() as session:
            service.revoke_client(session, client_id)


def import_source(project_id: str, source: Source, options: Options,
                  progress: Progress | None = None) -> Outcome:
    with import_target(project_id, options) as target:
        sender = Sender(target)
        try:
            return run_import(source, sender, DatabaseCheckpoints(
                project_id, source, restart=options.restart), chunk_size=options.chunk_size,
                concurrency=options.concurrency, max_rate=options.max_rate, progress=progress)
        finally:
            sender.http.close()

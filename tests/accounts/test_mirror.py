"""Projects are mirrored into the warehouse's raw ``projects`` table (real warehouse) through
the outbox accounts writes in each change's transaction (ADR 0027)."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy.orm import Session

from accounts import service
from accounts.db import session_scope
from lifecycle.project_mirror import sync_projects, sync_projects_or_warn
from trackhouse.settings import get_settings


def mirrored(ch, project_id: str) -> list[tuple]:
    table = f"{get_settings().raw_database}.projects"
    return ch.query(
        f"select id, name, domain, timezone, is_deleted from {table} final "
        "where id = {id:String}", parameters={"id": project_id}).result_rows


def queued(project_id: str) -> list[tuple]:
    with session_scope() as session:
        return [(e.name, e.is_deleted) for e in service.queued_mirror(session)
                if e.project_id == project_id]


def test_sync_everything_upserts_every_project(migrated, ch, session: Session, unique) -> None:
    first = service.create_project(session, name="Mirror One", project_id=unique("mirror"),
                                   domain="one.example", timezone="Asia/Tokyo", mirror=False)
    second = service.create_project(session, name="Mirror Two", project_id=unique("mirror"),
                                    mirror=False)
    session.commit()
    assert mirrored(ch, first.id) == []  # mirror=False: nothing queued, nothing sent
    assert queued(first.id) == []

    count = sync_projects(everything=True, client=ch)
    assert count >= len(service.list_projects(session)) >= 2
    assert mirrored(ch, first.id) == [(first.id, "Mirror One", "one.example", "Asia/Tokyo", 0)]
    assert mirrored(ch, second.id) == [(second.id, "Mirror Two", "", "UTC", 0)]
    # idempotent: mirroring again leaves one row per project
    sync_projects(everything=True)
    assert len(mirrored(ch, first.id)) == 1


def test_changes_are_queued_with_their_transaction_and_mirrored_by_the_sync(
        migrated, ch, accounts_db, unique) -> None:
    project_id = unique("live")
    with session_scope() as session:
        service.create_project(session, name="Live", project_id=project_id)
    assert queued(project_id) == [("Live", False)]
    assert mirrored(ch, project_id) == []  # the explicit step has not run
    assert sync_projects() >= 1
    assert mirrored(ch, project_id) == [(project_id, "Live", "", "UTC", 0)]
    assert queued(project_id) == []  # drained

    with session_scope() as session:
        service.update_project(session, project_id, timezone="America/Sao_Paulo")
    sync_projects()
    assert mirrored(ch, project_id) == [(project_id, "Live", "", "America/Sao_Paulo", 0)]

    # a rolled-back change is not queued
    try:
        with session_scope() as session:
            service.update_project(session, project_id, name="Never")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert queued(project_id) == []
    sync_projects()
    assert mirrored(ch, project_id)[0][1] == "Live"

    with session_scope() as session:
        service.delete_project(session, project_id)
    sync_projects()
    assert mirrored(ch, project_id) == []  # FINAL drops rows marked is_deleted


def test_changes_made_while_the_warehouse_is_down_are_mirrored_later(
        migrated, ch, accounts_db, unique) -> None:
    kept, dropped = unique("down"), unique("down")
    with session_scope() as session:
        service.create_project(session, name="Dropped", project_id=dropped)
    sync_projects()
    assert mirrored(ch, dropped) == [(dropped, "Dropped", "", "UTC", 0)]

    with socket.socket() as s:  # a port nothing listens on: the warehouse is down
        s.bind(("127.0.0.1", 0))
        down = get_settings().model_copy(
            update={"clickhouse_url": f"http://127.0.0.1:{s.getsockname()[1]}"})
    with session_scope() as session:
        service.create_project(session, name="Kept", project_id=kept)
        service.delete_project(session, dropped)
    with pytest.raises(Exception):  # noqa: B017 - any connection error
        sync_projects(settings=down)
    assert sync_projects_or_warn(down) is None  # the step after a change only warns
    assert queued(kept) == [("Kept", False)] and queued(dropped) == [("Dropped", True)]
    assert mirrored(ch, kept) == [] and len(mirrored(ch, dropped)) == 1

    sync_projects(everything=True)  # `trackhouse project sync` once it is back
    assert mirrored(ch, kept) == [(kept, "Kept", "", "UTC", 0)]
    assert mirrored(ch, dropped) == []  # the deletion arrived too
    assert queued(kept) == queued(dropped) == []

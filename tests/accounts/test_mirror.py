"""Projects are mirrored into the warehouse's raw ``projects`` table (real warehouse)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from accounts import service
from accounts.db import session_scope
from trackhouse.settings import get_settings


def mirrored(ch, project_id: str) -> list[tuple]:
    table = f"{get_settings().raw_database}.projects"
    return ch.query(
        f"select id, name, domain, timezone, is_deleted from {table} final "
        "where id = {id:String}", parameters={"id": project_id}).result_rows


def test_mirror_projects_upserts_every_project(migrated, ch, session: Session, unique) -> None:
    first = service.create_project(session, name="Mirror One", project_id=unique("mirror"),
                                   domain="one.example", timezone="Asia/Tokyo", mirror=False)
    second = service.create_project(session, name="Mirror Two", project_id=unique("mirror"),
                                    mirror=False)
    session.commit()
    assert mirrored(ch, first.id) == []  # mirror=False: nothing sent yet

    count = service.mirror_projects(session, ch)
    assert count == len(service.list_projects(session)) >= 2
    assert mirrored(ch, first.id) == [(first.id, "Mirror One", "one.example", "Asia/Tokyo", 0)]
    assert mirrored(ch, second.id) == [(second.id, "Mirror Two", "", "UTC", 0)]
    # idempotent: mirroring again leaves one row per project
    service.mirror_projects()
    assert len(mirrored(ch, first.id)) == 1


def test_changes_are_mirrored_after_commit(migrated, ch, accounts_db, unique) -> None:
    project_id = unique("live")
    with session_scope() as session:
        service.create_project(session, name="Live", project_id=project_id)
        assert mirrored(ch, project_id) == []  # not before the transaction commits
    assert mirrored(ch, project_id) == [(project_id, "Live", "", "UTC", 0)]

    with session_scope() as session:
        service.update_project(session, project_id, timezone="America/Sao_Paulo")
    assert mirrored(ch, project_id) == [(project_id, "Live", "", "America/Sao_Paulo", 0)]

    # a rolled-back change is not mirrored
    try:
        with session_scope() as session:
            service.update_project(session, project_id, name="Never")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert mirrored(ch, project_id)[0][1] == "Live"

    with session_scope() as session:
        service.delete_project(session, project_id)
    assert mirrored(ch, project_id) == []  # FINAL drops rows marked is_deleted

"""Projects: creation, validation, lookups, updates, deletion (on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import UTC

import pytest
from sqlalchemy.orm import Session

from accounts import service
from accounts.db import session_scope
from accounts.errors import Conflict, InvalidInput, NotFound


def test_create_list_update(session: Session, unique) -> None:
    project_id = unique("acme-shop")
    project = service.create_project(
        session, name="Acme Shop", project_id=project_id, domain="https://Acme.example/",
        timezone="Europe/Berlin",
        allowed_origins=["https://acme.example", "*.Acme.example", "https://acme.example/"],
    )
    session.commit()
    assert project.id == project_id
    assert project.domain == "acme.example"
    # normalised (lowercase, no trailing slash) and de-duplicated
    assert project.allowed_origins == ["https://acme.example", "*.acme.example"]
    assert project.created_at.tzinfo is UTC

    with session_scope() as other:
        listed = {p.id: p for p in service.list_projects(other)}
    assert listed[project_id].timezone == "Europe/Berlin"
    assert listed[project_id].allowed_origins == ["https://acme.example", "*.acme.example"]

    before = project.updated_at
    updated = service.update_project(session, project_id, timezone="America/New_York",
                                     name="Acme Store", allowed_origins=["*"])
    session.commit()
    assert (updated.name, updated.timezone, updated.allowed_origins) == (
        "Acme Store", "America/New_York", ["*"])
    assert updated.updated_at > before
    with session_scope() as other:
        reloaded = service.get_project(other, project_id)
        assert reloaded.timezone == "America/New_York"
        assert reloaded.updated_at.tzinfo is UTC


def test_invalid_time_zone_is_rejected_with_a_clear_error(session: Session, unique) -> None:
    with pytest.raises(InvalidInput, match=r"unknown time zone 'Mars/Olympus'.*IANA"):
        service.create_project(session, name="Bad", project_id=unique("bad"),
                               timezone="Mars/Olympus")
    project = service.create_project(session, name="Good", project_id=unique("good"))
    with pytest.raises(InvalidInput, match="unknown time zone"):
        service.update_project(session, project.id, timezone="Europe/Nowhere")


@pytest.mark.parametrize("bad_id", ["Acme", "acme shop", "-acme", "acme-", "a" * 65, "acme/x",
                                    "", "ümlaut"])
def test_project_id_must_be_a_url_safe_slug(session: Session, bad_id: str) -> None:
    with pytest.raises(InvalidInput, match="invalid project id"):
        service.create_project(session, name="X", project_id=bad_id)


def test_ids_are_slugs_of_the_name_and_unique(session: Session, unique) -> None:
    name = unique("Café Ünïcode") + " Shop!"
    first = service.create_project(session, name=name)
    second = service.create_project(session, name=name)
    assert re.fullmatch(r"cafe-unicode-[0-9a-f]{8}-shop", first.id), first.id
    assert second.id == first.id + "-2"
    with pytest.raises(Conflict, match="already exists"):
        service.create_project(session, name="again", project_id=first.id)


@pytest.mark.parametrize("origin", ["https://a.example/path", "ftp//x", "https://", "a b",
                                    "https://user@a.example", "https://a.example:99999"])
def test_bad_origins_are_rejected(session: Session, unique, origin: str) -> None:
    with pytest.raises(InvalidInput, match="origin"):
        service.create_project(session, name="X", project_id=unique("x"),
                               allowed_origins=[origin])


def test_tracker_lookups(session: Session, unique) -> None:
    domain = unique("blog") + ".example"
    website = "2F1A4D3E-9B7C-4C1E-8F00-0123456789AB"
    project = service.create_project(session, name="Blog", project_id=unique("blog"),
                                     plausible_domain=domain.upper(), umami_website_id=website)
    session.commit()
    assert project.plausible_domain == domain
    assert project.umami_website_id == website.lower()
    assert service.project_for_plausible_domain(session, domain).id == project.id
    assert service.project_for_umami_website(session, website.lower()).id == project.id
    assert service.project_for_plausible_domain(session, "nope.example") is None
    assert service.project_for_umami_website(session, "not-a-uuid") is None
    # a malformed domain names no project (found by the fuzz test: it used to raise ValueError)
    assert service.project_for_plausible_domain(session, "A://[") is None
    with pytest.raises(InvalidInput, match="invalid domain"):
        service.create_project(session, name="Bad", project_id=unique("bad"),
                               plausible_domain="https://[::1")
    with pytest.raises(Conflict, match="Plausible domain"):
        service.create_project(session, name="Copy", project_id=unique("copy"),
                               plausible_domain=domain)
    with pytest.raises(InvalidInput, match="Umami website id"):
        service.create_project(session, name="Bad", project_id=unique("bad"),
                               umami_website_id="12345")


def test_update_rejects_unknown_fields_and_projects(session: Session, unique) -> None:
    project = service.create_project(session, name="P", project_id=unique("p"))
    with pytest.raises(InvalidInput, match="unknown project field 'id'"):
        service.update_project(session, project.id, id="other")
    with pytest.raises(NotFound, match="no project"):
        service.update_project(session, unique("missing"), name="x")


def test_delete_removes_clients_and_access(session: Session, unique) -> None:
    project = service.create_project(session, name="Doomed", project_id=unique("doomed"))
    client, _ = service.create_client(session, project_id=project.id, with_secret=False)
    user = service.create_user(session, email=unique("viewer") + "@example.com",
                               password="long enough", project_ids=[project.id])
    session.commit()
    service.delete_project(session, project.id)
    session.commit()
    with session_scope() as other:
        assert other.get(type(client), client.id) is None
        assert service.user_project_ids(other, user.id) == []
        assert project.id not in {p.id for p in service.list_projects(other)}

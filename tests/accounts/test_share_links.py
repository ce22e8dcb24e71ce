"""Share links (accounts.shares and `trackhouse share`), on SQLite and PostgreSQL: the token is
stored only as its sha256, passwords as argon2, and revoked, expired or unknown tokens open
nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from accounts import service, shares
from accounts.db import session_scope
from accounts.errors import InvalidInput, NotFound
from accounts.models import ShareLink, utcnow
from accounts.shares import LinkState
from trackhouse.cli import app


def _project(session: Session, unique) -> str:
    project = service.create_project(session, name="Shared shop", project_id=unique("shared"),
                                     mirror=False)
    return project.id


def test_a_link_stores_only_hashes_and_opens_its_project(session: Session, unique) -> None:
    project_id = _project(session, unique)
    link, token = shares.create_share_link(session, project_id=project_id, label="board",
                                           password="board-pass-1", created_by="a@b.test")
    session.commit()
    assert len(token) == 43 and shares.TOKEN_PATTERN.match(token)
    row = session.scalar(select(ShareLink).where(ShareLink.id == link.id))
    assert row is not None and row.token_hash == shares.token_hash(token) != token
    assert row.password_hash and "board-pass-1" not in row.password_hash
    assert token not in repr(row) and row.token_hash not in repr(row)

    with session_scope() as other:
        state, view = shares.open_share_token(other, token)
    assert state is LinkState.OPEN and view is not None
    assert (view.project_id, view.has_password) == (project_id, True)
    with session_scope() as other:
        assert shares.check_share_password(other, link.id, "board-pass-1")
        assert not shares.check_share_password(other, link.id, "board-pass-2")
        assert not shares.check_share_password(other, link.id, "")
        assert other.get(ShareLink, link.id).last_opened_at is not None


@pytest.mark.parametrize("token", ["", "x", "a" * 43, "a" * 44, "' or 1=1 --" + "a" * 32])
def test_unknown_tokens_open_nothing(session: Session, token: str) -> None:
    assert shares.open_share_token(session, token) == (LinkState.UNKNOWN, None)


def test_revoked_and_expired_links_open_nothing(session: Session, unique) -> None:
    project_id = _project(session, unique)
    revoked, revoked_token = shares.create_share_link(session, project_id=project_id)
    expiring, expiring_token = shares.create_share_link(
        session, project_id=project_id, expires_at=utcnow() + timedelta(hours=1))
    session.commit()
    assert shares.revoke_share_link(session, revoked.id).revoked_at is not None
    assert shares.revoke_share_link(session, revoked.id).revoked_at is not None  # idempotent
    expiring.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    assert shares.open_share_token(session, revoked_token) == (LinkState.REVOKED, None)
    assert shares.open_share_token(session, expiring_token) == (LinkState.EXPIRED, None)
    assert shares.share_link_state(session, revoked.id) is LinkState.REVOKED
    assert not shares.check_share_password(session, expiring.id, "")
    with pytest.raises(NotFound):
        shares.revoke_share_link(session, 10**9)


def test_bad_input_gets_clear_errors(session: Session, unique) -> None:
    project_id = _project(session, unique)
    with pytest.raises(NotFound):
        shares.create_share_link(session, project_id=unique("missing"))
    with pytest.raises(InvalidInput, match="8 characters"):
        shares.create_share_link(session, project_id=project_id, password="short")
    with pytest.raises(InvalidInput, match="past"):
        shares.create_share_link(session, project_id=project_id,
                                 expires_at=utcnow() - timedelta(minutes=1))


def test_parse_expiry() -> None:
    now = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
    assert shares.parse_expiry(None, now=now) is None and shares.parse_expiry(" ", now=now) is None
    assert shares.parse_expiry("30m", now=now) == now + timedelta(minutes=30)
    assert shares.parse_expiry("7d", now=now) == now + timedelta(days=7)
    assert shares.parse_expiry("2w", now=now) == now + timedelta(weeks=2)
    assert shares.parse_expiry("2027-01-31", now=now) == datetime(2027, 2, 1, tzinfo=UTC)
    assert shares.parse_expiry("2027-01-31T18:00+01:00", now=now) == datetime(
        2027, 1, 31, 17, 0, tzinfo=UTC)
    for bad in ("0d", "soon", "2027-13-01", "2026-01-01", "-3d"):
        with pytest.raises(InvalidInput):
            shares.parse_expiry(bad, now=now)


def test_share_cli_create_list_revoke(session: Session, unique) -> None:
    project_id = _project(session, unique)
    session.commit()
    runner = CliRunner()
    created = runner.invoke(app, ["share", "create", "-p", project_id, "--label", "investors",
                                  "--expires", "7d", "--password", "--json"],
                            input="investor-pass\n")
    assert created.exit_code == 0, created.output
    details = json.loads(created.stdout)
    token = details["url"].split("?share=", 1)[1]
    assert details["has_password"] and details["status"] == "active"
    assert details["created_by"].startswith("cli:")
    with session_scope() as other:
        assert shares.open_share_token(other, token)[0] is LinkState.OPEN
        assert shares.check_share_password(other, details["id"], "investor-pass")

    listed = runner.invoke(app, ["share", "list", "-p", project_id, "--json"])
    assert listed.exit_code == 0, listed.output
    assert [d["id"] for d in json.loads(listed.stdout)] == [details["id"]]
    assert token not in listed.stdout and shares.token_hash(token) not in listed.stdout

    revoked = runner.invoke(app, ["share", "revoke", str(details["id"])])
    assert revoked.exit_code == 0 and "revoked share link" in revoked.output
    assert json.loads(runner.invoke(app, ["share", "list", "-p", project_id, "--json"])
                      .stdout)[0]["status"] == "revoked"
    with session_scope() as other:
        assert shares.open_share_token(other, token)[0] is LinkState.REVOKED

    for args in (["share", "create", "-p", unique("missing")],
                 ["share", "create", "-p", project_id, "--expires", "yesterday"],
                 ["share", "revoke", "999999999"]):
        failed = runner.invoke(app, args)
        assert failed.exit_code == 1 and "error:" in failed.output, failed.output


def test_deleting_the_project_deletes_its_links(session: Session, unique) -> None:
    project_id = _project(session, unique)
    link, token = shares.create_share_link(session, project_id=project_id)
    session.commit()
    service.delete_project(session, project_id, mirror=False)
    session.commit()
    assert shares.list_share_links(session, project_id) == []
    assert shares.open_share_token(session, token) == (LinkState.UNKNOWN, None)

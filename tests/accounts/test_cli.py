"""`trackhouse project|client|user` through typer's CliRunner, on a fresh database each."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accounts import service
from accounts.auth import AuthError, authenticate_client
from accounts.db import current_revisions, session_scope
from trackhouse.cli import app

runner = CliRunner()


def run(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result


@pytest.fixture
def fresh_database(backend_url: str, throwaway_database, use_database, tmp_path: Path):
    """A database with no tables at all: the first command must create them."""
    backend = "sqlite" if backend_url.startswith("sqlite") else "postgresql"
    with throwaway_database(backend, tmp_path) as url:
        yield use_database(url)


def test_cli_end_to_end(fresh_database, migrated) -> None:
    assert current_revisions() == set()
    result = run("project", "create", "Acme Shop", "--timezone", "Asia/Tokyo",
                 "--origin", "https://acme.example", "--origin", "*.acme.example",
                 "--domain", "acme.example")
    assert "created project acme-shop" in result.output
    assert current_revisions() == {"0008"}  # the command migrated the empty database
    assert "mirrored 1 project(s)" in result.output

    run("project", "create", "Mars", "--timezone", "Mars/Olympus", code=1)
    listing = run("project", "list", "--json").stdout
    [project] = json.loads(listing)
    assert (project["id"], project["timezone"]) == ("acme-shop", "Asia/Tokyo")
    assert project["allowed_origins"] == ["https://acme.example", "*.acme.example"]
    assert "acme-shop" in run("project", "list").stdout

    created = json.loads(run("client", "create", "--project", "acme-shop", "--type", "write",
                             "--json").stdout)
    secret = created["secret"]
    assert authenticate_client(created["id"], secret, None).project_id == "acme-shop"

    text_out = run("client", "create", "-p", "acme-shop", "--type", "read").stdout
    read_id = re.search(r"client id:\s+(\S+)", text_out).group(1)
    read_secret = re.search(r"client secret:\s+(\S+)", text_out).group(1)
    assert authenticate_client(read_id, read_secret, None, need="read").type == "read"

    browser = run("client", "create", "-p", "acme-shop", "--no-secret",
                  "--origin", "https://app.acme.example").stdout
    assert "client secret" not in browser

    listed = run("client", "list").stdout
    assert created["id"] in listed and read_id in listed
    assert secret not in listed and read_secret not in listed
    assert secret not in run("client", "list", "--json").stdout

    assert "revoked" in run("client", "revoke", created["id"]).stdout
    with pytest.raises(AuthError, match="revoked"):
        authenticate_client(created["id"], secret, None)
    run("client", "revoke", "00000000-0000-4000-8000-000000000000", code=1)
    run("client", "create", "-p", "no-such-project", code=1)

    made = run("user", "create", "boss@example.com", "--admin").stdout
    password = re.search(r"password:\s+(\S+)", made).group(1)
    run("user", "create", "viewer@example.com", "--password", "viewer-password",
        "--project", "acme-shop")
    run("user", "create", "short@example.com", "--password", "short", code=1)
    with session_scope() as session:
        boss = service.authenticate_user(session, "boss@example.com", password)
        viewer = service.authenticate_user(session, "viewer@example.com", "viewer-password")
        assert boss is not None and boss.is_admin
        assert [p.id for p in service.projects_for_user(session, viewer)] == ["acme-shop"]
    users = json.loads(run("user", "list", "--json").stdout)
    assert {u["email"]: u["project_ids"] for u in users}["viewer@example.com"] == ["acme-shop"]


def test_cli_errors_are_clean(fresh_database) -> None:
    result = run("project", "create", "X", "--id", "Not A Slug", code=1)
    assert "invalid project id" in result.output
    assert "Traceback" not in result.output
    result = run("project", "create", "X", "--origin", "https://x.example/path", code=1)
    assert "invalid origin" in result.output

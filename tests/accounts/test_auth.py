"""Client secrets and the authentication matrix of protocol.md, on both backends."""

from __future__ import annotations

import threading
import time

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text, update
from sqlalchemy.orm import Session

import accounts.auth
from accounts import service
from accounts.auth import AuthError, ClientAuthenticator, authenticate_client, authenticator
from accounts.db import session_scope
from accounts.errors import InvalidInput
from accounts.hashing import hash_secret
from accounts.models import Client, Project, utcnow
from trackhouse.settings import Settings


@pytest.fixture
def project(session: Session, unique) -> Project:
    created = service.create_project(
        session, name="Shop", project_id=unique("shop"),
        allowed_origins=["https://shop.example", "*.shop.example"])
    session.commit()
    return created


def make_client(project_id: str, **kwargs) -> tuple[Client, str | None]:
    with session_scope() as session:
        return service.create_client(session, project_id=project_id, **kwargs)


def assert_denied(status: int, message: str, *args, need: str = "write") -> None:
    with pytest.raises(AuthError) as denied:
        authenticate_client(*args, need=need)
    assert denied.value.status_code == status
    assert message in denied.value.message


def test_secret_is_shown_once_and_stored_only_as_argon2_hash(project: Project) -> None:
    client, secret = make_client(project.id, type="write", name="backend")
    assert secret and len(secret) >= 40
    with session_scope() as session:
        row = session.execute(text("select * from clients where id = :id"),
                              {"id": client.id}).mappings().one()
    assert all(secret not in str(value) for value in row.values())
    assert row["secret_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(row["secret_hash"], secret)
    # listing never gives the secret back
    with session_scope() as session:
        listed = next(c for c in service.list_clients(session, project.id) if c.id == client.id)
    assert secret not in repr(listed)
    assert listed.secret_hash == row["secret_hash"]
    # two clients never share a secret
    _, other_secret = make_client(project.id)
    assert other_secret != secret


def test_auth_matrix(project: Project, unique) -> None:
    writer, writer_secret = make_client(project.id, type="write")
    browser, none = make_client(project.id, type="write", with_secret=False)
    assert none is None
    reader, reader_secret = make_client(project.id, type="read")
    root, root_secret = make_client(project.id, type="root")

    # with a secret (server-side): no Origin needed
    ok = authenticate_client(writer.id, writer_secret, None)
    assert (ok.client_id, ok.project_id, ok.type, ok.has_secret) == (
        writer.id, project.id, "write", True)
    assert ok.project_timezone == "UTC"
    assert ok.allowed_origins == ("https://shop.example", "*.shop.example")
    # without a secret, from an allowed origin (the project's, the client has none)
    ok = authenticate_client(browser.id, None, "https://shop.example")
    assert ok.has_secret is False
    assert authenticate_client(browser.id, "", "https://www.shop.example").client_id == browser.id
    # the client id is accepted in any UUID spelling
    assert authenticate_client(browser.id.upper(), None, "https://shop.example")

    assert_denied(401, "not allowed", browser.id, None, "https://evil.example")
    assert_denied(401, "not allowed", browser.id, None, "https://shop.example.evil.example")
    assert_denied(401, "not allowed", browser.id, None, "http://shop.example:8080")
    assert_denied(401, "missing Origin", browser.id, None, None)
    assert_denied(401, "wrong client secret", writer.id, "not-the-secret", None)
    # a wrong secret is refused even from an allowed origin
    assert_denied(401, "wrong client secret", writer.id, "x" * 43, "https://shop.example")
    assert_denied(401, "no secret", browser.id, writer_secret, None)
    assert_denied(401, "unknown client", "5b0c0f7e-0000-4000-8000-000000000000", None,
                  "https://shop.example")
    assert_denied(401, "unknown client", "not-a-uuid", None, "https://shop.example")
    assert_denied(401, "missing client id", None, writer_secret, None)
    assert_denied(401, "missing client id", "  ", writer_secret, None)

    # a read client may read but not write; root may do everything
    assert authenticate_client(reader.id, reader_secret, None, need="read").type == "read"
    assert_denied(403, "read client may not send events", reader.id, reader_secret, None)
    assert_denied(403, "write client may not read", writer.id, writer_secret, None, need="read")
    for need in ("write", "read", "root"):
        assert authenticate_client(root.id, root_secret, None, need=need).type == "root"
    # credentials are checked before permissions: a wrong secret is 401, not 403
    assert_denied(401, "wrong client secret", reader.id, "wrong", None)
    # read and root clients never authenticate by Origin alone (it is forgeable)
    assert_denied(401, "read client must send its client secret", reader.id, None,
                  "https://shop.example", need="read")
    assert_denied(401, "root client must send its client secret", root.id, None,
                  "https://shop.example")

    # revoked clients are refused (at once in the process that revoked)
    with session_scope() as session:
        service.revoke_client(session, writer.id)
    assert_denied(401, "revoked", writer.id, writer_secret, None)


def test_only_write_clients_may_go_without_secret(project: Project) -> None:
    with pytest.raises(InvalidInput, match="read client needs a secret"):
        make_client(project.id, type="read", with_secret=False)
    with pytest.raises(InvalidInput, match="invalid client type"):
        make_client(project.id, type="admin")


def test_client_origins_override_the_projects(project: Project) -> None:
    client, _ = make_client(project.id, with_secret=False, origins=["https://*.cdn.example"])
    assert authenticate_client(client.id, None, "https://eu.cdn.example").allowed_origins == (
        "https://*.cdn.example",)
    assert_denied(401, "not allowed", client.id, None, "https://shop.example")
    # the scheme is part of the pattern
    assert_denied(401, "not allowed", client.id, None, "http://eu.cdn.example")
    # '*.x' is for subdomains, not the bare domain
    assert_denied(401, "not allowed", client.id, None, "https://cdn.example")


def test_star_allows_every_origin(session: Session, unique) -> None:
    open_project = service.create_project(session, name="Open", project_id=unique("open"),
                                          allowed_origins=["*"])
    session.commit()
    client, _ = make_client(open_project.id, with_secret=False)
    for origin in ("https://anything.example", "http://localhost:5173", "null"):
        assert authenticate_client(client.id, None, origin).project_id == open_project.id
    assert_denied(401, "missing Origin", client.id, None, None)


def test_client_without_any_origins_accepts_no_browser(session: Session, unique) -> None:
    bare = service.create_project(session, name="Bare", project_id=unique("bare"))
    session.commit()
    client, _ = make_client(bare.id, with_secret=False)
    assert_denied(401, "not allowed", client.id, None, "https://bare.example")


def test_secret_verdict_is_cached_without_the_plaintext(project: Project) -> None:
    client, secret = make_client(project.id)
    auth = authenticator()
    started = time.perf_counter()
    authenticate_client(client.id, secret, None)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(100):
        authenticate_client(client.id, secret, None)
    cached = (time.perf_counter() - started) / 100
    assert cached < first / 20, (first, cached)  # argon2 and the database ran only once
    # the cache holds keyed digests, never the secret
    keys = list(auth.verdicts._entries)
    assert keys and all(isinstance(k, bytes) and len(k) == 32 for k in keys)
    assert all(secret.encode() not in k for k in keys)
    assert auth.authenticate_cached(client.id, secret, None) is not None
    # a wrong secret is also remembered, so repeating it costs no argon2 run
    assert_denied(401, "wrong client secret", client.id, "wrong-secret", None)
    wrong_key = auth._verdict_key(auth.record(client.id), "wrong-secret")
    assert auth.cached_verdict(wrong_key) is False
    assert wrong_key not in auth.verdicts._entries  # wrong ones are kept apart from right ones


def test_a_burst_of_new_requests_runs_argon2_once(project: Project,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client, secret = make_client(project.id)
    calls = []
    real_verify = accounts.auth.verify_secret

    def counting_verify(stored_hash: str, plaintext: str) -> bool:
        calls.append(1)
        return real_verify(stored_hash, plaintext)

    monkeypatch.setattr(accounts.auth, "verify_secret", counting_verify)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(
        authenticate_client(client.id, secret, None))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 8
    assert len(calls) == 1


def test_revoke_from_elsewhere_is_honoured_after_the_client_cache_ttl(
        project: Project, use_database, accounts_db: Settings) -> None:
    ttl = 1.5
    use_database(str(accounts_db.effective_database_url),
                 TRACKHOUSE_AUTH_CLIENT_CACHE_TTL_S=str(ttl))
    client, secret = make_client(project.id)
    assert authenticate_client(client.id, secret, None).client_id == client.id  # verdict cached
    authenticator().forget(client.id)
    cached_at = time.monotonic()
    assert authenticate_client(client.id, secret, None).client_id == client.id  # record cached
    # another process revokes: this process's cache does not hear of it...
    with session_scope() as session:
        session.execute(update(Client).where(Client.id == client.id).values(revoked_at=utcnow()))
    assert authenticate_client(client.id, secret, None).client_id == client.id
    assert time.monotonic() - cached_at < ttl  # (so the call above really came from the cache)
    # ...until its entry expires
    time.sleep(ttl + 0.1)
    assert_denied(401, "revoked", client.id, secret, None)


def test_caches_can_be_disabled(project: Project, accounts_db: Settings) -> None:
    auth = ClientAuthenticator(accounts_db, client_ttl_s=0, secret_ttl_s=0)
    client, secret = make_client(project.id)
    assert auth.authenticate(client.id, secret, None).has_secret
    assert len(auth.clients) == 0 and len(auth.verdicts) == 0
    assert auth.authenticate_cached(client.id, secret, None) is None


def test_rotated_hash_invalidates_cached_verdict(project: Project, accounts_db: Settings) -> None:
    auth = ClientAuthenticator(accounts_db, client_ttl_s=0, secret_ttl_s=60)
    client, secret = make_client(project.id)
    assert auth.authenticate(client.id, secret, None)
    with session_scope() as session:
        session.execute(update(Client).where(Client.id == client.id).values(
            secret_hash=hash_secret("a-new-secret-value")))
    with pytest.raises(AuthError, match="wrong client secret"):
        auth.authenticate(client.id, secret, None)
    assert auth.authenticate(client.id, "a-new-secret-value", None)

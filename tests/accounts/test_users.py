"""Dashboard users: hashing, login, and which projects each one sees."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from accounts import service
from accounts.db import session_scope
from accounts.errors import Conflict, InvalidInput, NotFound


def test_password_is_hashed_and_login_works(session: Session, unique) -> None:
    email = unique("ada") + "@Example.com"
    user = service.create_user(session, email=email, password="correct horse", name="Ada")
    session.commit()
    assert user.email == email.lower()
    raw = session.execute(text("select password_hash from users where id = :id"),
                          {"id": user.id}).scalar_one()
    assert raw.startswith("$argon2id$") and "correct horse" not in raw

    with session_scope() as other:
        assert service.authenticate_user(other, email, "correct horse").id == user.id
        # e-mails are compared normalised: case and surrounding spaces do not matter
        assert service.authenticate_user(other, f" {email.upper()} ", "correct horse").id == user.id
        assert service.authenticate_user(other, email, "wrong horse") is None
        assert service.authenticate_user(other, email, "") is None


def test_unknown_user_costs_as_much_as_a_known_one(session: Session, unique) -> None:
    email = unique("timing") + "@example.com"
    service.create_user(session, email=email, password="password123")
    session.commit()
    service.authenticate_user(session, "warm-up@example.com", "x")  # builds the dummy hash

    def duration(address: str) -> float:
        started = time.perf_counter()
        assert service.authenticate_user(session, address, "wrong password") is None
        return time.perf_counter() - started

    # the fastest of five each: one load spike on the shared machine must not decide the ratio
    known = min(duration(email) for _ in range(5))
    unknown = min(duration(unique("nobody") + "@example.com") for _ in range(5))
    # both pay one argon2 verify (~0.1 s); without the dummy verify unknown would be ~1 ms
    assert unknown > known / 3, (known, unknown)


def test_user_validation(session: Session, unique) -> None:
    email = unique("dup") + "@example.com"
    service.create_user(session, email=email, password="password123")
    with pytest.raises(Conflict, match="already exists"):
        service.create_user(session, email=email.upper(), password="password123")
    with pytest.raises(InvalidInput, match="at least 8"):
        service.create_user(session, email=unique("short") + "@example.com", password="short")
    with pytest.raises(InvalidInput, match="e-mail"):
        service.create_user(session, email="not an email", password="password123")
    with pytest.raises(NotFound, match="no project"):
        service.create_user(session, email=unique("x") + "@example.com",
                            password="password123", project_ids=[unique("missing")])


def test_projects_for_admin_and_viewer(session: Session, unique) -> None:
    first = service.create_project(session, name="First", project_id=unique("first"))
    second = service.create_project(session, name="Second", project_id=unique("second"))
    admin = service.create_user(session, email=unique("admin") + "@example.com",
                                password="password123", is_admin=True)
    viewer = service.create_user(session, email=unique("viewer") + "@example.com",
                                 password="password123", project_ids=[first.id])
    session.commit()

    admin_sees = {p.id for p in service.projects_for_user(session, admin)}
    assert {first.id, second.id} <= admin_sees
    assert [p.id for p in service.projects_for_user(session, viewer)] == [first.id]
    assert [p.id for p in service.projects_for_user(session, viewer.id)] == [first.id]
    assert service.user_can_see(session, viewer, first.id)
    assert not service.user_can_see(session, viewer, second.id)

    service.grant_access(session, viewer.id, second.id)
    service.grant_access(session, viewer.id, second.id)  # idempotent
    session.commit()
    assert {p.id for p in service.projects_for_user(session, viewer)} == {first.id, second.id}
    service.revoke_access(session, viewer.id, first.id)
    service.revoke_access(session, viewer.id, first.id)  # idempotent
    session.commit()
    assert [p.id for p in service.projects_for_user(session, viewer)] == [second.id]
    assert viewer.email in {u.email for u in service.list_users(session)}


def test_last_admin_cannot_be_demoted(session: Session, unique) -> None:
    admin = service.create_user(session, email=unique("boss") + "@example.com",
                                password="password123", is_admin=True)
    session.commit()
    other_admins = [u for u in service.list_users(session) if u.is_admin and u.id != admin.id]
    for other in other_admins:  # earlier tests in this database may have made admins
        service.delete_user(session, other.id)
    with pytest.raises(InvalidInput, match="last admin"):
        service.update_user(session, admin.id, is_admin=False)
    with pytest.raises(InvalidInput, match="last admin"):
        service.delete_user(session, admin.id)
    service.update_user(session, admin.id, password="a new password")
    session.commit()
    assert service.authenticate_user(session, admin.email, "a new password").id == admin.id


def test_a_new_password_ends_the_users_logins(session: Session, unique) -> None:
    from datetime import timedelta

    from accounts.models import LoginSession, utcnow

    user = service.create_user(session, email=unique("pw") + "@example.com",
                               password="password123")
    other = service.create_user(session, email=unique("pw-other") + "@example.com",
                                password="password123")
    session.flush()
    for owner, token in ((user, "a" * 64), (user, "b" * 64), (other, "c" * 64)):
        session.add(LoginSession(user_id=owner.id, token_hash=token,
                                 expires_at=utcnow() + timedelta(days=1)))
    session.commit()
    service.update_user(session, user.id, name="renamed")  # not a password change
    session.commit()
    assert session.query(LoginSession).filter(LoginSession.revoked_at.is_(None)).filter(
        LoginSession.user_id.in_([user.id, other.id])).count() == 3
    service.update_user(session, user.id, password="a brand new password")
    session.commit()
    live = {row.token_hash for row in session.query(LoginSession).filter(
        LoginSession.user_id.in_([user.id, other.id]), LoginSession.revoked_at.is_(None))}
    assert live == {"c" * 64}

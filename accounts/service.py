"""Users, projects and API clients: plain functions that take a ``Session`` first.

They validate their input (``InvalidInput``), refuse duplicates (``Conflict``) and missing
rows (``NotFound``) with messages fit to show a user, and leave committing to the caller
(``accounts.db.session_scope``). A created, changed or deleted project is queued in the
project mirror outbox in the same transaction; ``lifecycle.project_mirror`` copies it into
the warehouse (this package imports no warehouse code: ADR 0027).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounts.auth import forget_client
from accounts.errors import Conflict, InvalidInput, NotFound
from accounts.hashing import burn_verify_time, hash_secret, needs_rehash, new_secret, verify_secret
from accounts.models import (
    CLIENT_TYPES,
    Client,
    LoginSession,
    Project,
    ProjectAccess,
    ProjectMirror,
    User,
    utcnow,
)
from accounts.validation import (
    normalize_domain,
    normalize_email,
    normalize_origins,
    slugify,
    validate_password,
    validate_plausible_domain,
    validate_slug,
    validate_timezone,
    validate_umami_website_id,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# projects
# ---------------------------------------------------------------------------------------

PROJECT_FIELDS = ("name", "domain", "timezone", "allowed_origins", "plausible_domain",
                  "umami_website_id", "retention_days")
# a retention period longer than the event-time range the collector accepts keeps everything
MAX_RETENTION_DAYS = 36_500


def _clean_name(name: str, what: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned:
        raise InvalidInput(f"a {what} needs a name")
    if len(cleaned) > 200:
        raise InvalidInput(f"a {what} name has at most 200 characters")
    return cleaned


def _clean_project_field(field: str, value: Any) -> Any:
    if field == "name":
        return _clean_name(value, "project")
    if field == "domain":
        return normalize_domain(value or "")
    if field == "timezone":
        return validate_timezone(value or "UTC")
    if field == "allowed_origins":
        return normalize_origins(value)
    if field == "plausible_domain":
        return validate_plausible_domain(value)
    if field == "umami_website_id":
        return validate_umami_website_id(value)
    if field == "retention_days":
        # None or 0: keep raw events forever
        if value is None or value == 0:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not (
                1 <= value <= MAX_RETENTION_DAYS):
            raise InvalidInput(f"retention days must be a whole number from 1 to "
                               f"{MAX_RETENTION_DAYS} (0 keeps events forever), not {value!r}")
        return value
    raise InvalidInput(
        f"unknown project field {field!r}; changeable fields: {', '.join(PROJECT_FIELDS)}"
    )


def _check_lookups_unique(session: Session, project: Project) -> None:
    """The tracker lookups (Plausible domain, Umami website id) must name one project."""
    for field, label in (("plausible_domain", "Plausible domain"),
                         ("umami_website_id", "Umami website id")):
        value = getattr(project, field)
        if value is None:
            continue
        column = getattr(Project, field)
        owner = session.scalar(select(Project.id).where(column == value,
                                                        Project.id != project.id))
        if owner is not None:
            raise Conflict(f"{label} {value!r} is already used by project {owner!r}")


def _flush(session: Session, what: str) -> None:
    """Flush, turning a uniqueness race lost to another writer into ``Conflict``."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{what} conflicts with an existing row: {exc.orig}") from None


def _unique_slug(session: Session, base: str) -> str:
    taken = set(session.scalars(select(Project.id).where(Project.id.like(f"{base}%"))))
    if base not in taken:
        return base
    for n in range(2, 10_000):
        suffix = f"-{n}"
        candidate = base[: 64 - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
    raise Conflict(f"too many projects named like {base!r}; pass an explicit id")


def create_project(
    session: Session,
    *,
    name: str,
    domain: str = "",
    timezone: str = "UTC",
    allowed_origins: Iterable[str] = (),
    project_id: str | None = None,
    plausible_domain: str | None = None,
    umami_website_id: str | None = None,
    mirror: bool = True,
) -> Project:
    """Create a project; its id is ``project_id`` or a unique slug of ``name``."""
    fields = {
        "name": name, "domain": domain, "timezone": timezone,
        "allowed_origins": list(allowed_origins) if allowed_origins is not None else [],
        "plausible_domain": plausible_domain, "umami_website_id": umami_website_id,
    }
    values = {field: _clean_project_field(field, value) for field, value in fields.items()}
    if project_id is not None:
        slug = validate_slug(project_id)
        if session.get(Project, slug) is not None:
            raise Conflict(f"a project with id {slug!r} already exists")
    else:
        slug = _unique_slug(session, slugify(values["name"]))
    project = Project(id=slug, **values)
    _check_lookups_unique(session, project)
    session.add(project)
    _flush(session, f"project {slug!r}")
    if mirror:
        _queue_mirror(session, project)
    return project


M = TypeVar("M", Project, Client, User)


def _get(session: Session, model: type[M], key: Any, label: str) -> M:
    row = session.get(model, key)
    if row is None:
        raise NotFound(f"no {label} with id {key!r}")
    return row


def get_project(session: Session, project_id: str) -> Project:
    return _get(session, Project, project_id, "project")


def update_project(session: Session, project_id: str, *, mirror: bool = True,
                   **fields: Any) -> Project:
    """Change any of ``PROJECT_FIELDS``; the id never changes (events carry it)."""
    project = get_project(session, project_id)
    values = {field: _clean_project_field(field, value) for field, value in fields.items()}
    for field, value in values.items():
        setattr(project, field, value)
    _check_lookups_unique(session, project)
    if session.is_modified(project):
        project.updated_at = utcnow()
    _flush(session, f"project {project_id!r}")
    if mirror:
        _queue_mirror(session, project)
    return project


def delete_project(session: Session, project_id: str, *, mirror: bool = True) -> None:
    """Delete a project with its clients and access grants; its events stay in the warehouse."""
    project = get_project(session, project_id)
    session.delete(project)
    _flush(session, f"project {project_id!r}")
    if mirror:
        _queue_mirror(session, project, deleted=True)


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.name, Project.id)))


def _project_by(session: Session, field: str, normalize: Callable[[str], str | None],
                value: str) -> Project | None:
    try:
        normalized = normalize(value)
    except InvalidInput:
        return None  # a malformed lookup value names no project
    if normalized is None:
        return None
    return session.scalar(select(Project).where(getattr(Project, field) == normalized))


def project_for_plausible_domain(session: Session, domain: str) -> Project | None:
    """The project a Plausible tracker's ``d`` (data-domain) selects."""
    return _project_by(session, "plausible_domain", validate_plausible_domain, domain)


def project_for_umami_website(session: Session, website_id: str) -> Project | None:
    """The project an Umami tracker's ``website`` id selects."""
    return _project_by(session, "umami_website_id", validate_umami_website_id, website_id)


# ---------------------------------------------------------------------------------------
# the warehouse's copy of the projects: an outbox, drained by lifecycle/project_mirror.py
# ---------------------------------------------------------------------------------------


def _queue_mirror(session: Session, project: Project, deleted: bool = False) -> None:
    # a deletion carries the time it happened: the warehouse keeps the newest updated_at
    session.merge(ProjectMirror(
        project_id=project.id, name=project.name, domain=project.domain,
        timezone=project.timezone, created_at=project.created_at,
        updated_at=utcnow() if deleted else project.updated_at, is_deleted=deleted))


def mirror_row(item: Project | ProjectMirror) -> dict[str, Any]:
    """One row of the warehouse's ``projects`` table, from a project or an outbox entry."""
    if isinstance(item, ProjectMirror):
        return {"id": item.project_id, "name": item.name, "domain": item.domain,
                "timezone": item.timezone, "created_at": item.created_at,
                "updated_at": item.updated_at, "is_deleted": int(item.is_deleted)}
    return {"id": item.id, "name": item.name, "domain": item.domain, "timezone": item.timezone,
            "created_at": item.created_at, "updated_at": item.updated_at, "is_deleted": 0}


def queued_mirror(session: Session) -> list[ProjectMirror]:
    """The project changes the warehouse has not taken yet."""
    return list(session.scalars(select(ProjectMirror).order_by(ProjectMirror.project_id)))


def forget_mirrored(session: Session, entries: Iterable[ProjectMirror]) -> None:
    """Drop outbox entries the warehouse took; a newer change to the project stays queued."""
    for entry in entries:
        session.execute(delete(ProjectMirror).where(
            ProjectMirror.project_id == entry.project_id,
            ProjectMirror.updated_at == entry.updated_at,
            ProjectMirror.is_deleted == entry.is_deleted))


# ---------------------------------------------------------------------------------------
# API clients
# ---------------------------------------------------------------------------------------


def create_client(
    session: Session,
    *,
    project_id: str,
    type: str = "write",
    name: str = "",
    origins: Iterable[str] = (),
    with_secret: bool = True,
) -> tuple[Client, str | None]:
    """Create an API client; return it with its plaintext secret, which is not kept anywhere.

    Only the argon2 hash of the secret is stored, so the caller must show the secret now.
    ``origins`` empty means the project's allowed origins apply to browser requests.
    """
    if type not in CLIENT_TYPES:
        raise InvalidInput(f"invalid client type {type!r}: use one of {', '.join(CLIENT_TYPES)}")
    if not with_secret and type != "write":
        raise InvalidInput(f"a {type} client needs a secret: only write clients may "
                           "authenticate by Origin alone")
    project = get_project(session, project_id)
    secret = new_secret() if with_secret else None
    client = Client(
        project_id=project.id,
        name=(name or "").strip()[:200] or f"{type} client",
        type=type,
        secret_hash=hash_secret(secret) if secret is not None else None,
        allowed_origins=normalize_origins(list(origins)),
    )
    session.add(client)
    _flush(session, "client")
    return client, secret


def get_client(session: Session, client_id: str) -> Client:
    return _get(session, Client, client_id, "client")


def revoke_client(session: Session, client_id: str) -> Client:
    """Revoke a client (idempotent). Other processes honour it within the client-cache TTL."""
    client = get_client(session, client_id)
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        _flush(session, f"client {client_id!r}")
    forget_client(client_id)
    return client


def list_clients(session: Session, project_id: str | None = None, *,
                 include_revoked: bool = True) -> list[Client]:
    query = select(Client).order_by(Client.project_id, Client.created_at, Client.id)
    if project_id is not None:
        query = query.where(Client.project_id == project_id)
    if not include_revoked:
        query = query.where(Client.revoked_at.is_(None))
    return list(session.scalars(query))


# ---------------------------------------------------------------------------------------
# users
# ---------------------------------------------------------------------------------------


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    name: str = "",
    is_admin: bool = False,
    project_ids: Iterable[str] = (),
) -> User:
    normalized = normalize_email(email)
    validate_password(password)
    if session.scalar(select(User.id).where(User.email == normalized)) is not None:
        raise Conflict(f"a user with e-mail {normalized!r} already exists")
    user = User(email=normalized, name=(name or "").strip()[:200],
                password_hash=hash_secret(password), is_admin=bool(is_admin))
    session.add(user)
    _flush(session, f"user {normalized!r}")
    for project_id in project_ids:
        grant_access(session, user.id, project_id)
    return user


def get_user(session: Session, user_id: int) -> User:
    return _get(session, User, user_id, "user")


def get_user_by_email(session: Session, email: str) -> User | None:
    try:
        normalized = normalize_email(email)
    except InvalidInput:
        return None
    return session.scalar(select(User).where(User.email == normalized))


def update_user(session: Session, user_id: int, *, name: str | None = None,
                is_admin: bool | None = None, password: str | None = None) -> User:
    user = get_user(session, user_id)
    if name is not None:
        user.name = name.strip()[:200]
    if is_admin is not None:
        if user.is_admin and not is_admin:
            _ensure_another_admin(session, user)
        user.is_admin = bool(is_admin)
    if password is not None:
        user.password_hash = hash_secret(validate_password(password))
        # a new password ends every dashboard login made with the old one
        session.execute(update(LoginSession).where(
            LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None),
        ).values(revoked_at=utcnow()))
    _flush(session, f"user {user.email!r}")
    return user


def _ensure_another_admin(session: Session, user: User) -> None:
    admins = session.scalar(select(func.count()).select_from(User).where(
        User.is_admin.is_(True), User.id != user.id))
    if not admins:
        raise InvalidInput(f"{user.email} is the last admin; make someone else admin first")


def delete_user(session: Session, user_id: int) -> None:
    user = get_user(session, user_id)
    if user.is_admin:
        _ensure_another_admin(session, user)
    session.delete(user)
    _flush(session, f"user {user.email!r}")


def authenticate_user(session: Session, email: str, password: str) -> User | None:
    """The user with this e-mail and password, or None. Unknown e-mails cost one argon2
    verify too, so timing does not tell which addresses exist."""
    user = get_user_by_email(session, email or "")
    if user is None:
        burn_verify_time(password or "")
        return None
    if not verify_secret(user.password_hash, password or ""):
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_secret(password)
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def grant_access(session: Session, user_id: int, project_id: str) -> None:
    """Let a user see a project (idempotent)."""
    get_user(session, user_id)
    get_project(session, project_id)
    if session.get(ProjectAccess, (user_id, project_id)) is None:
        session.add(ProjectAccess(user_id=user_id, project_id=project_id))
        _flush(session, "project access")


def revoke_access(session: Session, user_id: int, project_id: str) -> None:
    """Stop a user seeing a project (idempotent)."""
    access = session.get(ProjectAccess, (user_id, project_id))
    if access is not None:
        session.delete(access)
        _flush(session, "project access")


def user_project_ids(session: Session, user_id: int) -> list[str]:
    return list(session.scalars(select(ProjectAccess.project_id)
                                .where(ProjectAccess.user_id == user_id)
                                .order_by(ProjectAccess.project_id)))


def projects_for_user(session: Session, user: User | int) -> list[Project]:
    """The projects a user may see: every project for an admin, granted ones otherwise."""
    if isinstance(user, int):
        user = get_user(session, user)
    if user.is_admin:
        return list_projects(session)
    query = (select(Project).join(ProjectAccess, ProjectAccess.project_id == Project.id)
             .where(ProjectAccess.user_id == user.id).order_by(Project.name, Project.id))
    return list(session.scalars(query))


def user_can_see(session: Session, user: User, project_id: str) -> bool:
    if user.is_admin:
        return session.get(Project, project_id) is not None
    return session.get(ProjectAccess, (user.id, project_id)) is not None


__all__ = [
    "create_project", "update_project", "delete_project", "get_project", "list_projects",
    "project_for_plausible_domain", "project_for_umami_website", "mirror_row",
    "queued_mirror", "forget_mirrored",
    "create_client", "get_client", "revoke_client", "list_clients",
    "create_user", "get_user", "get_user_by_email", "update_user", "delete_user",
    "authenticate_user", "list_users", "grant_access", "revoke_access", "user_project_ids",
    "projects_for_user", "user_can_see",
]

"""``trackhouse project|client|user ...``: projects, API clients and dashboard users.

Every command first brings the metadata database to the latest migration, so a fresh
machine needs no set-up step. Secrets and generated passwords are printed once and never
stored or logged in plain text.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
# Notes and errors go to stderr so that --json output on stdout stays parseable.
stderr = Console(stderr=True)

project_app = typer.Typer(help="Tracked sites and apps.", no_args_is_help=True)
client_app = typer.Typer(help="API clients (keys) that send or read data.", no_args_is_help=True)
user_app = typer.Typer(help="People who log in to the dashboards.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def register(app: typer.Typer) -> None:
    app.add_typer(project_app, name="project")
    app.add_typer(client_app, name="client")
    app.add_typer(user_app, name="user")


@contextmanager
def _accounts() -> Iterator[Any]:
    """Upgrade the database, open a session, and turn account errors into a clean exit."""
    from sqlalchemy.exc import OperationalError

    from accounts.db import safe_url, session_scope, upgrade
    from accounts.errors import AccountsError

    try:
        upgrade()
        with session_scope() as session:
            yield session
    except AccountsError as exc:
        stderr.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    except OperationalError as exc:
        stderr.print(f"[red]error:[/red] cannot use the metadata database {safe_url()}: "
                     f"{exc.orig}", highlight=False)
        raise typer.Exit(1) from None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _print_json(value: Any) -> None:
    # Plain print: rich would wrap long lines and break the JSON.
    print(json.dumps(value, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for index, column in enumerate(columns):
        # The first column is the id people copy: never wrapped.
        table.add_column(column, overflow="fold", no_wrap=index == 0)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _mirror_now() -> None:
    from lifecycle.project_mirror import sync_projects

    try:
        count = sync_projects()
    except Exception as exc:  # the warehouse may not run yet; the change stays queued
        stderr.print(f"[yellow]note:[/yellow] projects not mirrored to the warehouse ({exc}); "
                     "run `trackhouse project sync` once it runs", highlight=False)
    else:
        stderr.print(f"mirrored {count} project(s) to the warehouse")


def _project_dict(project: Any) -> dict[str, Any]:
    return {
        "id": project.id, "name": project.name, "domain": project.domain,
        "timezone": project.timezone, "allowed_origins": list(project.allowed_origins),
        "plausible_domain": project.plausible_domain,
        "umami_website_id": project.umami_website_id,
        "retention_days": project.retention_days,
        "created_at": project.created_at.isoformat(), "updated_at": project.updated_at.isoformat(),
    }


def _client_dict(client: Any) -> dict[str, Any]:
    return {
        "id": client.id, "project_id": client.project_id, "name": client.name,
        "type": client.type, "has_secret": client.has_secret,
        "allowed_origins": list(client.allowed_origins),
        "created_at": client.created_at.isoformat(),
        "revoked_at": client.revoked_at.isoformat() if client.revoked_at else None,
    }


# ---------------------------------------------------------------------------------------
# projects
# ---------------------------------------------------------------------------------------


@project_app.command("create")
def project_create(
    name: str = typer.Argument(..., help="Display name, e.g. 'Acme Shop'."),
    project_id: str = typer.Option(None, "--id", help="URL-safe id (default: a slug of NAME)."),
    domain: str = typer.Option("", help="The site's domain, e.g. acme.com."),
    timezone: str = typer.Option("UTC", help="IANA time zone the dashboards use for days."),
    origin: Annotated[list[str] | None, typer.Option(
        "--origin", help="Allowed browser origin (repeatable): https://acme.com, "
        "*.acme.com, or *.")] = None,
    plausible_domain: str = typer.Option(None, help="The `data-domain` of a Plausible tracker."),
    umami_website_id: str = typer.Option(None, help="The `data-website-id` of an Umami tracker."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a project."""
    from accounts.service import create_project

    with _accounts() as session:
        project = create_project(
            session, name=name, project_id=project_id, domain=domain, timezone=timezone,
            allowed_origins=origin or (), plausible_domain=plausible_domain,
            umami_website_id=umami_website_id,
        )
        session.commit()
        if as_json:
            _print_json(_project_dict(project))
        else:
            console.print(f"created project [bold]{project.id}[/bold] ({project.name}, "
                          f"{project.timezone})", highlight=False)
    _mirror_now()


@project_app.command("update")
def project_update(
    project_id: str = typer.Argument(..., help="The project's id."),
    name: str = typer.Option(None, help="New display name."),
    domain: str = typer.Option(None, help="New domain."),
    timezone: str = typer.Option(None, help="New IANA time zone."),
    origin: Annotated[list[str] | None, typer.Option(
        "--origin", help="Replace the allowed origins (repeatable).")] = None,
    plausible_domain: str = typer.Option(None, help="New Plausible domain ('' to clear)."),
    umami_website_id: str = typer.Option(None, help="New Umami website id ('' to clear)."),
    retention_days: int = typer.Option(
        None, help="Delete raw events older than this many days (0: keep forever, the "
        "default); the marts keep their aggregates. See README, Retention."),
) -> None:
    """Change a project's settings (its id never changes)."""
    from accounts.service import update_project

    given = {
        "name": name, "domain": domain, "timezone": timezone,
        "allowed_origins": origin or None, "plausible_domain": plausible_domain,
        "umami_website_id": umami_website_id,
    }
    fields = {key: value for key, value in given.items() if value is not None}
    if retention_days is not None:
        fields["retention_days"] = retention_days  # 0 clears it: a None would mean "unchanged"
    with _accounts() as session:
        project = update_project(session, project_id, **fields)
        session.commit()
        console.print(f"updated project [bold]{project.id}[/bold]", highlight=False)
    _mirror_now()


@project_app.command("list")
def project_list(as_json: bool = JSON_OPTION) -> None:
    """List every project."""
    from accounts.service import list_projects

    with _accounts() as session:
        projects = list_projects(session)
    if as_json:
        _print_json([_project_dict(p) for p in projects])
        return
    rows = [[p.id, p.name, p.domain, p.timezone, ", ".join(p.allowed_origins),
             p.plausible_domain or "", p.umami_website_id or "", _when(p.created_at)]
            for p in projects]
    _table("projects", ["id", "name", "domain", "time zone", "allowed origins",
                        "plausible domain", "umami website", "created"], rows)


@project_app.command("delete")
def project_delete(
    project_id: str = typer.Argument(..., help="The project's id."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Delete a project with its clients and access grants (its events stay stored)."""
    from accounts.service import delete_project

    if not yes:
        typer.confirm(f"Delete project {project_id} and all its API clients?", abort=True)
    with _accounts() as session:
        delete_project(session, project_id)
    console.print(f"deleted project [bold]{project_id}[/bold]", highlight=False)
    _mirror_now()


@project_app.command("sync")
def project_sync() -> None:
    """Mirror every project, and every queued change or deletion, into the warehouse's
    projects table (idempotent)."""
    from lifecycle.project_mirror import sync_projects

    with _accounts():  # upgrades the metadata database first
        pass
    try:
        count = sync_projects(everything=True)
    except Exception as exc:
        stderr.print(f"[red]error:[/red] the warehouse did not take the projects: {exc}",
                     highlight=False)
        raise typer.Exit(1) from None
    console.print(f"mirrored {count} project(s) to the warehouse")


# ---------------------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------------------


@client_app.command("create")
def client_create(
    project: str = typer.Option(..., "--project", "-p", help="The project's id."),
    client_type: str = typer.Option("write", "--type", "-t",
                                    help="write (send events), read (read API) or root (all)."),
    name: str = typer.Option("", help="A label, e.g. 'website' or 'backend'."),
    origin: Annotated[list[str] | None, typer.Option(
        "--origin", help="Allowed browser origin (repeatable); default: the project's.")] = None,
    no_secret: bool = typer.Option(
        False, "--no-secret", help="A browser client, authenticated by Origin only."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an API client and print its id and secret (the secret is shown only now)."""
    from accounts.service import create_client

    with _accounts() as session:
        client, secret = create_client(session, project_id=project, type=client_type, name=name,
                                       origins=origin or (), with_secret=not no_secret)
    if as_json:
        _print_json({**_client_dict(client), "secret": secret})
        return
    console.print(f"created {client.type} client for project [bold]{client.project_id}[/bold]",
                  highlight=False)
    console.print(f"client id:     {client.id}", highlight=False)
    if secret is not None:
        console.print(f"client secret: {secret}", highlight=False, soft_wrap=True)
        console.print("[yellow]Store the secret now: only its hash is kept, it cannot be "
                      "shown again.[/yellow]")
    else:
        console.print("no secret: browsers authenticate by Origin against the allowed origins")


@client_app.command("list")
def client_list(
    project: str = typer.Option(None, "--project", "-p", help="Only this project's clients."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List API clients (never their secrets)."""
    from accounts.service import list_clients

    with _accounts() as session:
        clients = list_clients(session, project)
    if as_json:
        _print_json([_client_dict(c) for c in clients])
        return
    rows = [[c.id, c.project_id, c.name, c.type, "yes" if c.has_secret else "no",
             ", ".join(c.allowed_origins) or "(project's)", _when(c.created_at),
             _when(c.revoked_at)] for c in clients]
    _table("clients", ["id", "project", "name", "type", "secret", "allowed origins", "created",
                       "revoked"], rows)


@client_app.command("revoke")
def client_revoke(client_id: str = typer.Argument(..., help="The client's id.")) -> None:
    """Revoke a client: its requests are refused within seconds."""
    from accounts.service import revoke_client

    with _accounts() as session:
        client = revoke_client(session, client_id)
    console.print(f"revoked client {client.id} (project {client.project_id})", highlight=False)


# ---------------------------------------------------------------------------------------
# users
# ---------------------------------------------------------------------------------------


def _password(given: str | None, ask: Callable[[], str]) -> tuple[str, bool]:
    """The password to set and whether it was generated (and so must be printed)."""
    if given is not None:
        return given, False
    if sys.stdin.isatty():
        return ask(), False
    return secrets.token_urlsafe(12), True


@user_app.command("create")
def user_create(
    email: str = typer.Argument(..., help="The login e-mail address."),
    admin: bool = typer.Option(False, "--admin", help="Sees every project and manages users."),
    password: str = typer.Option(
        None, help="The password (default: prompt on a terminal, otherwise generate one)."),
    name: str = typer.Option("", help="Display name."),
    project: Annotated[list[str] | None, typer.Option(
        "--project", "-p", help="A project this user may see (repeatable).")] = None,
) -> None:
    """Create a dashboard user."""
    from accounts.service import create_user

    chosen, generated = _password(
        password, lambda: typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    with _accounts() as session:
        user = create_user(session, email=email, password=chosen, name=name, is_admin=admin,
                           project_ids=project or ())
    role = "admin" if user.is_admin else "viewer"
    console.print(f"created {role} [bold]{user.email}[/bold]", highlight=False)
    if generated:
        console.print(f"password: {chosen}", highlight=False, soft_wrap=True)
        console.print("[yellow]Store the password now: it cannot be shown again.[/yellow]")


@user_app.command("list")
def user_list(as_json: bool = JSON_OPTION) -> None:
    """List dashboard users and the projects they see."""
    from accounts.service import list_users, user_project_ids

    with _accounts() as session:
        users = [(u, user_project_ids(session, u.id)) for u in list_users(session)]
    if as_json:
        _print_json([{"id": u.id, "email": u.email, "name": u.name, "is_admin": u.is_admin,
                      "project_ids": ids, "created_at": u.created_at.isoformat()}
                     for u, ids in users])
        return
    rows = [[str(u.id), u.email, u.name, "admin" if u.is_admin else "viewer",
             "(all)" if u.is_admin else ", ".join(ids), _when(u.created_at)] for u, ids in users]
    _table("users", ["id", "e-mail", "name", "role", "projects", "created"], rows)


@user_app.command("grant")
def user_grant(
    email: Annotated[str, typer.Argument(help="The user's e-mail.")],
    project: Annotated[list[str], typer.Option(
        "--project", "-p", help="Project id (repeatable).")],
) -> None:
    """Let a user see more projects."""
    from accounts.errors import NotFound
    from accounts.service import get_user_by_email, grant_access

    with _accounts() as session:
        user = get_user_by_email(session, email)
        if user is None:
            raise NotFound(f"no user with e-mail {email!r}")
        for project_id in project:
            grant_access(session, user.id, project_id)
    console.print(f"{user.email} now sees {', '.join(project)}", highlight=False)

"""``trackhouse share create|list|revoke``: public read-only links of a project's overview.

The link (with its token) is printed once at creation: only the token's hash is stored.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

import typer

from trackhouse.cli.commands.accounts import (
    JSON_OPTION,
    _accounts,
    _print_json,
    _table,
    _when,
    console,
)

share_app = typer.Typer(help="Public read-only links of a project's overview.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(share_app, name="share")


def _status(link: Any) -> str:
    from accounts.models import utcnow

    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at is not None and link.expires_at <= utcnow():
        return "expired"
    return "active"


def _link_dict(link: Any) -> dict[str, Any]:
    return {"id": link.id, "project_id": link.project_id, "label": link.label,
            "status": _status(link), "has_password": link.has_password,
            "created_by": link.created_by, "created_at": link.created_at.isoformat(),
            "expires_at": link.expires_at.isoformat() if link.expires_at else None,
            "revoked_at": link.revoked_at.isoformat() if link.revoked_at else None,
            "last_opened_at": link.last_opened_at.isoformat() if link.last_opened_at else None}


def _read_password() -> str:
    if sys.stdin.isatty():
        return typer.prompt("Link password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\n")  # piped: one line, never in argv or the history


@share_app.command("create")
def share_create(
    project: str = typer.Option(..., "--project", "-p", help="The project's id."),
    label: str = typer.Option("", help="A label: who the link is for."),
    expires: str = typer.Option(
        None, help="When it stops working: a duration (30m, 12h, 7d, 2w), a date (the end of "
        "that day, UTC) or an ISO time; default: never."),
    password: bool = typer.Option(
        False, "--password", help="Protect the link with a password (asked on a terminal, "
        "else read as one line from stdin)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a share link and print it (shown only now)."""
    from accounts.shares import create_share_link, parse_expiry, share_url

    secret = _read_password() if password else None
    with _accounts() as session:
        if password and not secret:
            from accounts.errors import InvalidInput

            raise InvalidInput("--password was given but the password is empty")
        link, token = create_share_link(session, project_id=project, label=label,
                                        password=secret, expires_at=parse_expiry(expires),
                                        created_by=f"cli:{getpass.getuser()}")
        session.flush()
        url = share_url(token)
        details = _link_dict(link)
    if as_json:
        _print_json({**details, "url": url})
        return
    console.print(f"created share link #{details['id']} for project "
                  f"[bold]{details['project_id']}[/bold]", highlight=False)
    console.print(url, highlight=False, soft_wrap=True)
    console.print("[yellow]Copy the link now: only its hash is kept, it cannot be shown "
                  "again.[/yellow]")


@share_app.command("list")
def share_list(
    project: str = typer.Option(None, "--project", "-p", help="Only this project's links."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List share links (never their tokens), newest first."""
    from accounts.shares import list_share_links

    with _accounts() as session:
        links = list_share_links(session, project)
        if as_json:
            _print_json([_link_dict(link) for link in links])
            return
        rows = [[str(link.id), link.project_id, link.label, _status(link),
                 "yes" if link.has_password else "no", _when(link.expires_at) or "never",
                 _when(link.created_at), link.created_by, _when(link.last_opened_at)]
                for link in links]
    _table("share links", ["id", "project", "label", "status", "password", "expires",
                           "created", "by", "last opened"], rows)


@share_app.command("revoke")
def share_revoke(link_id: int = typer.Argument(..., help="The link's id (`share list`).")) -> None:
    """Revoke a share link: pages opened with it stop at their next interaction."""
    from accounts.shares import revoke_share_link

    with _accounts() as session:
        link = revoke_share_link(session, link_id)
        project_id = link.project_id
    console.print(f"revoked share link #{link_id} (project {project_id})", highlight=False)

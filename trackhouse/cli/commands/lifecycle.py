"""``trackhouse privacy erase|export|log`` (one visitor's data, erased or handed over) and
``trackhouse backup DIR`` / ``restore DIR``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

stderr = Console(stderr=True)

privacy_app = typer.Typer(
    help="Erasure and access requests (GDPR art. 17 and 15) for one profile or device.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(privacy_app, name="privacy")
    app.command("backup")(backup)
    app.command("restore")(restore)


def _subject(project: str, profile: str | None, device: str | None):  # -> Subject
    from lifecycle.privacy import PrivacyError, Subject

    if (profile is None) == (device is None):
        stderr.print("[red]error:[/red] give exactly one of --profile and --device")
        raise typer.Exit(2)
    try:
        if profile is not None:
            return Subject(project, "profile", profile)
        return Subject(project, "device", device or "")
    except PrivacyError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


PROJECT = typer.Option(..., "--project", "-p", help="The project's id.")
PROFILE = typer.Option(None, "--profile", help="The profile id (what the site sends as profileId).")
DEVICE = typer.Option(None, "--device", help="The device id (as stored in the events).")
OUTPUT = typer.Option(None, "--output", "-o",
                      help="Write the JSON to this file (default: standard output).")


@privacy_app.command("erase")
def erase(
    project: str = PROJECT,
    profile: str = PROFILE,
    device: str = DEVICE,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Delete every row of a profile or a device, and recompute the marts built from them."""
    from lifecycle.privacy import PrivacyError
    from lifecycle.privacy import erase as run_erase

    subject = _subject(project, profile, device)
    if not yes:
        typer.confirm(f"Erase every row of {subject.kind} {subject.value!r} in project "
                      f"{subject.project_id!r}? This cannot be undone.", abort=True)
    try:
        erasure = run_erase(subject, progress=lambda message: stderr.print(message,
                                                                             highlight=False))
    except PrivacyError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    stderr.print(f"erased {erasure.rows} row(s) in {erasure.seconds:.1f} s "
                 f"(recomputed {erasure.recomputed})", highlight=False)


@privacy_app.command("export")
def export(
    project: str = PROJECT,
    profile: str = PROFILE,
    device: str = DEVICE,
    output: Path = OUTPUT,
) -> None:
    """Write everything stored about a profile or a device as JSON."""
    from lifecycle.privacy import export as run_export

    subject = _subject(project, profile, device)
    data = run_export(subject)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        # the visitor's data: readable by the owner only
        output.touch(mode=0o600, exist_ok=True)
        output.chmod(0o600)
        output.write_text(text + "\n")
        rows = sum(len(r) for r in data["tables"].values())
        stderr.print(f"wrote {rows} row(s) from {len(data['tables'])} table(s) to {output}",
                     highlight=False)


@privacy_app.command("log")
def log(limit: int = typer.Option(50, help="How many of the latest requests.")) -> None:
    """List the latest erasure and export requests (the audit records)."""
    from lifecycle.privacy import requests

    for request in requests(limit=limit):
        print(json.dumps({
            "id": request.id, "at": request.created_at.isoformat(), "action": request.action,
            "project_id": request.project_id, "kind": request.subject_kind,
            "fingerprint": request.subject_fingerprint, "by": request.requested_by,
            "rows": request.rows, "detail": request.detail,
        }))


BACKUP_DIR = typer.Argument(..., help="A new (or empty) directory for the backup.")
RESTORE_DIR = typer.Argument(..., help="A directory written by `trackhouse backup`.")


def backup(target: Path = BACKUP_DIR) -> None:
    """Back up the warehouse, the metadata database and the Dagster instance while the stack
    runs (files readable by the owner only)."""
    from lifecycle.backup import BackupError
    from lifecycle.backup import backup as run_backup

    try:
        manifest = run_backup(target, progress=lambda m: stderr.print(m, highlight=False))
    except BackupError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    rows = sum(t["rows"] for t in manifest["tables"])
    stderr.print(f"backed up {rows:,} rows in {len(manifest['tables'])} tables and views, "
                 f"{manifest['bytes']:,} bytes, in {manifest['seconds']:.1f} s to {target}",
                 highlight=False)


def restore(source: Path = RESTORE_DIR) -> None:
    """Restore a backup into an empty installation (fresh data directory, empty warehouse),
    then bring its schemas up to this version."""
    from accounts.db import upgrade
    from lifecycle.backup import BackupError
    from lifecycle.backup import restore as run_restore
    from warehouse.migrate import migrate

    try:
        result = run_restore(source, progress=lambda m: stderr.print(m, highlight=False))
    except BackupError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    applied = migrate()
    upgrade()
    stderr.print(f"restored {result['rows']:,} rows in {result['seconds']:.1f} s"
                 + (f"; applied migrations {[m.version for m in applied]}" if applied else ""),
                 highlight=False)

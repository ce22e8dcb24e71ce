"""``trackhouse import umami|ga4|openpanel ...``: bring history from another analytics tool
through the collector's import path (``importers/``, docs/importers.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

stderr = Console(stderr=True)
import_app = typer.Typer(help="Import history from Umami, Google Analytics 4 or OpenPanel "
                         "(idempotent and resumable).", no_args_is_help=True)

PROJECT = typer.Option(..., "--project", help="Trackhouse project id that receives the events.")
COLLECTOR = typer.Option(None, "--collector-url",
                         help="Collector to send through (default: the configured collector).")
CLIENT_ID = typer.Option(None, "--client-id", help="A write or root client of the project "
                         "(default: a temporary write client, revoked at the end).")
CLIENT_SECRET = typer.Option(None, "--client-secret", envvar="TRACKHOUSE_IMPORT_CLIENT_SECRET",
                             help="That client's secret.")
CHUNK = typer.Option(5_000, "--chunk-size", min=1, max=5_000,
                     help="Events per request (the collector takes at most 5,000).")
CONCURRENCY = typer.Option(4, "--concurrency", min=1, max=32, help="Chunks in flight at once.")
MAX_RATE = typer.Option(0.0, "--max-rate", min=0,
                        help="At most this many events per second (0: as fast as possible).")
RESTART = typer.Option(False, "--restart", help="Forget the checkpoint and read the source "
                       "from the start (events already stored are skipped).")
JSON_OUT = typer.Option(False, "--json", help="Print the summary as JSON on stdout.")
GA4_FILES = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                           help="BigQuery export files: NDJSON (.json, .ndjson, .gz) or "
                           "Parquet (.parquet).")
OPENPANEL_FILES = typer.Argument(None, exists=True, dir_okay=False, readable=True,
                                 help="Dumps of OpenPanel's ClickHouse events table, and "
                                 "optionally of its profiles table (NDJSON or CSV with a "
                                 "header).")


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")


class RateColumn(ProgressColumn):
    """Events per second, as rich measures the task's speed."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="cyan")


def _run(project: str, make_source: Callable[[], Any], collector_url: str | None,
         client_id: str | None, client_secret: str | None, chunk_size: int, concurrency: int,
         max_rate: float, restart: bool, as_json: bool) -> None:
    from importers.engine import ImportFailed
    from importers.runner import Options, import_source
    from trackhouse.settings import get_settings

    settings = get_settings()
    options = Options(
        collector_url=(collector_url or
                       f"http://{settings.collector_host}:{settings.collector_port}"),
        client_id=client_id, client_secret=client_secret, chunk_size=chunk_size,
        concurrency=concurrency, max_rate=max_rate, restart=restart)
    columns = (TextColumn("[bold]importing"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    try:
        source = make_source()
        with Progress(*columns, console=stderr, transient=False,
                      disable=not stderr.is_terminal) as bar:
            task = bar.add_task("import", total=None)

            def progress(done: int, total: int | None) -> None:
                if total is not None:
                    bar.update(task, total=total)
                bar.advance(task, done)

            outcome = import_source(project, source, options, progress)
    except ImportFailed as error:
        stderr.print(f"[red]error:[/red] {error}", highlight=False)
        stderr.print("What the collector acknowledged is checkpointed: run the same command "
                     "again to resume.", highlight=False)
        raise typer.Exit(1) from None
    _summary(source.description, outcome, as_json)


def _summary(description: str, outcome: Any, as_json: bool) -> None:
    run, total = outcome.run, outcome.total
    figures = {
        "source": description, "resumed": outcome.resumed,
        "elapsed_s": round(outcome.elapsed_s, 2), "events_per_s": round(outcome.rate),
        "run": {"read": run.read, "imported": run.imported, "duplicates": run.duplicates,
                "refused": run.refused},
        "total": {"read": total.read, "imported": total.imported,
                  "duplicates": total.duplicates, "refused": total.refused},
        "refusals": [{"reason": reason, "count": count, "example": total.examples.get(reason, "")}
                     for reason, count in total.reasons.most_common()],
    }
    if as_json:
        sys.stdout.write(json.dumps(figures) + "\n")
        return
    console = Console()
    note = " (resumed from its checkpoint)" if outcome.resumed else ""
    console.print(f"{description}{note}: {run.read:,} read in {outcome.elapsed_s:.1f} s "
                  f"({outcome.rate:,.0f} events/s)", highlight=False)
    table = Table("", "this run", "whole import")
    for label, key in (("read", "read"), ("imported", "imported"),
                       ("skipped as duplicates", "duplicates"), ("refused", "refused")):
        table.add_row(label, f"{figures['run'][key]:,}", f"{figures['total'][key]:,}")
    console.print(table)
    if total.reasons:
        reasons = Table("refused because", "events", "e.g. source row")
        for item in figures["refusals"]:
            reasons.add_row(item["reason"], f"{item['count']:,}", item["example"])
        console.print(reasons)


@import_app.command("umami")
def import_umami(
    database_url: str = typer.Option(..., "--database-url", envvar="UMAMI_DATABASE_URL",
                                     help="Umami's PostgreSQL, postgresql://user@host/db."),
    website_id: str = typer.Option(..., "--website-id", help="Umami website id (a UUID)."),
    project: str = PROJECT, collector_url: str | None = COLLECTOR,
    client_id: str | None = CLIENT_ID, client_secret: str | None = CLIENT_SECRET,
    chunk_size: int = CHUNK, concurrency: int = CONCURRENCY, max_rate: float = MAX_RATE,
    restart: bool = RESTART, as_json: bool = JSON_OUT,
) -> None:
    """Umami v2 on PostgreSQL: page views, custom events with their data, sessions' browser,
    OS, device, screen, language and location, UTM and referrers."""
    from importers.umami import UmamiSource

    _run(project, lambda: UmamiSource(database_url, website_id), collector_url, client_id,
         client_secret, chunk_size, concurrency, max_rate, restart, as_json)


@import_app.command("ga4")
def import_ga4(
    files: list[Path] = GA4_FILES,
    project: str = PROJECT, collector_url: str | None = COLLECTOR,
    client_id: str | None = CLIENT_ID, client_secret: str | None = CLIENT_SECRET,
    chunk_size: int = CHUNK, concurrency: int = CONCURRENCY, max_rate: float = MAX_RATE,
    restart: bool = RESTART, as_json: bool = JSON_OUT,
) -> None:
    """Google Analytics 4's BigQuery export (events_YYYYMMDD tables exported as files)."""
    from importers.ga4 import Ga4Source

    _run(project, lambda: Ga4Source(files), collector_url, client_id, client_secret,
         chunk_size, concurrency, max_rate, restart, as_json)


@import_app.command("openpanel")
def import_openpanel(
    files: list[Path] | None = OPENPANEL_FILES,
    api_url: str | None = typer.Option(
        None, "--api-url", help="Read OpenPanel's export API instead of files, e.g. "
        "https://api.openpanel.dev; --client-id and --client-secret are then OpenPanel's "
        "(a read or root client; secret also from OPENPANEL_CLIENT_SECRET)."),
    api_project_id: str | None = typer.Option(
        None, "--openpanel-project-id", help="OpenPanel project to read (default: the "
        "client's own)."),
    project: str = PROJECT, collector_url: str | None = COLLECTOR,
    client_id: str | None = typer.Option(
        None, "--client-id", help="With --api-url: OpenPanel's client. Otherwise: a write or "
        "root client of the Trackhouse project (default: a temporary write client)."),
    client_secret: str | None = typer.Option(None, "--client-secret",
                                             help="That client's secret."),
    trackhouse_client_id: str | None = typer.Option(
        None, "--trackhouse-client-id", help="With --api-url: a write or root client of the "
        "Trackhouse project (default: a temporary write client, revoked at the end)."),
    trackhouse_client_secret: str | None = typer.Option(
        None, "--trackhouse-client-secret", envvar="TRACKHOUSE_IMPORT_CLIENT_SECRET",
        help="That client's secret."),
    chunk_size: int = CHUNK, concurrency: int = CONCURRENCY, max_rate: float = MAX_RATE,
    restart: bool = RESTART, as_json: bool = JSON_OUT,
) -> None:
    """OpenPanel: its export API (--api-url), or dumps of its ClickHouse ``events`` (and
    ``profiles``) tables; device, session and profile ids, properties and profiles kept."""
    import os

    if bool(files) == bool(api_url):
        stderr.print("[red]error:[/red] give dump files or --api-url (one of them)",
                     highlight=False)
        raise typer.Exit(2)
    if api_url:
        from importers.openpanel_api import OpenPanelApiSource

        secret = client_secret or os.environ.get("OPENPANEL_CLIENT_SECRET", "")
        if not client_id or not secret:
            stderr.print("[red]error:[/red] --api-url needs OpenPanel's --client-id and "
                         "--client-secret (or OPENPANEL_CLIENT_SECRET)", highlight=False)
            raise typer.Exit(2)
        _run(project, lambda: OpenPanelApiSource(api_url, client_id, secret, api_project_id),
             collector_url, trackhouse_client_id, trackhouse_client_secret, chunk_size,
             concurrency, max_rate, restart, as_json)
        return
    from importers.openpanel import OpenPanelSource

    assert files is not None
    _run(project, lambda: OpenPanelSource(files), collector_url,
         client_id or trackhouse_client_id,
         client_secret or trackhouse_client_secret, chunk_size, concurrency, max_rate,
         restart, as_json)

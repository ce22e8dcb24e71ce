"""Commands of the warehouse: the embedded ClickHouse endpoint and raw-schema migrations."""

from __future__ import annotations

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    app.command("warehouse")(serve_warehouse)
    app.command("migrate")(migrate)


def serve_warehouse(
    host: str = typer.Option(None, help="Bind address (default: TRACKHOUSE_WAREHOUSE_HOST)."),
    port: int = typer.Option(None, help="Port (default: TRACKHOUSE_WAREHOUSE_PORT, 8123)."),
    data_dir: str = typer.Option(
        None, help="chdb data directory (default: <data_dir>/clickhouse)."
    ),
) -> None:
    """Serve the embedded ClickHouse (chdb) over ClickHouse's HTTP interface.

    One process owns the chdb data directory; every other process uses ordinary ClickHouse
    clients against it. Not needed when TRACKHOUSE_CLICKHOUSE_URL names a real server.
    """
    from warehouse.server import serve

    serve(host=host, port=port, data_dir=data_dir)


def migrate() -> None:
    """Apply the raw-schema migrations (idempotent; safe on every start)."""
    from warehouse.migrate import migrate as run_migrations

    applied = run_migrations()
    console = Console()
    if applied:
        for migration in applied:
            console.print(f"applied {migration.version:04d}_{migration.name}")
    else:
        console.print("raw schema is up to date")

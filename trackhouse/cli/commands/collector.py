"""Commands of the collector: the ingestion API, the landing worker, and demo traffic."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("collector")(serve_collector)
    app.command("worker")(run_worker)
    app.command("demo")(demo)
    app.command("deadletters")(deadletters)


def serve_collector(
    host: str = typer.Option(None, help="Bind address (default: TRACKHOUSE_COLLECTOR_HOST)."),
    port: int = typer.Option(None, help="Port (default: TRACKHOUSE_COLLECTOR_PORT, 8000)."),
    workers: int = typer.Option(None, help="worker processes, each on its own listening "
                                            "socket (default: TRACKHOUSE_COLLECTOR_WORKERS)."),
) -> None:
    """Serve the OpenPanel-compatible ingestion API (POST /track, /track/batch; /docs)."""
    from collector.serve import serve
    from trackhouse.settings import get_settings

    settings = get_settings()
    serve(
        "collector.main:create_app", factory=True,
        host=host or settings.collector_host, port=port or settings.collector_port,
        workers=workers or settings.collector_workers,
        loop="uvloop", http="httptools", access_log=False, log_level="warning",
        proxy_headers=False,  # the collector reads forwarding headers itself (trusted proxies)
    )


def run_worker(
    burst: bool = typer.Option(False, help="Land what is queued, then exit."),
) -> None:
    """Land buffered events in ClickHouse (RQ worker plus the batch flusher)."""
    from collector.worker import run_worker as run

    run(burst=burst)


def demo(
    url: str = typer.Option(None, help="Collector URL (default: the configured collector)."),
    devices: int = typer.Option(3000, help="Visitors per project."),
    days: int = typer.Option(30, help="Days of history to import."),
    seed: int = typer.Option(7, help="Random seed (the same seed sends the same traffic)."),
) -> None:
    """Send realistic demo traffic through the collector's HTTP API (creates the demo
    projects and clients if absent)."""
    from demo.traffic import run_demo

    run_demo(url=url, devices=devices, days=days, seed=seed)


def deadletters(
    limit: int = typer.Option(10, help="How many of the latest rejected rows to show."),
) -> None:
    """Show the rows ClickHouse rejected (kept in Redis with the reason), per lane (live
    events, profiles, imports)."""
    import redis
    from rich.console import Console

    from trackhouse.buffer_layout import dead_letters
    from trackhouse.settings import get_settings

    console = Console()
    for lane, (count, entries) in dead_letters(
            redis.Redis.from_url(get_settings().redis_url), limit).items():
        console.print(f"[bold]{lane}[/]: {count} rejected rows")
        for entry in entries:
            console.print(f"  {entry['at']}  batch {entry['batch']}: {entry['reason'][:200]}")
            console.print(f"    {entry['row'][:300]}", markup=False)

"""``trackhouse up`` / ``down`` / ``status``: the whole stack from the Procfile, run by honcho."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from trackhouse.secure_files import secure_state
from trackhouse.settings import PROJECT_ROOT, Settings, get_settings

PROCFILE = PROJECT_ROOT / "Procfile"
console = Console()


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("refresh")(refresh)


def procfile_processes(settings: Settings) -> list[str]:
    """The Procfile's process names this configuration runs (no embedded warehouse when an
    external ClickHouse is configured)."""
    names = []
    for line in PROCFILE.read_text().splitlines():
        name, sep, _ = line.partition(":")
        if not sep or line.lstrip().startswith("#"):
            continue
        name = name.strip()
        if name == "warehouse" and not settings.embedded_warehouse:
            continue
        names.append(name)
    return names


def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "stack.pid"


def wait_until_answering(url: str, what: str, timeout_s: float) -> None:
    """Block until ``url`` answers 200, or raise after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {what} at {url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.2)


def wait_for_warehouse(settings: Settings, timeout_s: float = 60.0) -> None:
    """Block until the warehouse answers /ping, or raise after timeout_s."""
    wait_until_answering(f"{settings.effective_clickhouse_url}/ping", "warehouse", timeout_s)


def prepare_metadata() -> None:
    """Migrate the metadata database and copy its projects into the warehouse (best effort:
    `trackhouse project sync` repairs the copy later)."""
    from accounts.db import upgrade
    from lifecycle.project_mirror import sync_projects

    upgrade()
    try:
        sync_projects(everything=True)
    except Exception as error:  # noqa: BLE001 - the stack must come up even if the copy lags
        console.print(f"[yellow]projects not copied to the warehouse yet: {error}[/]")


def up(
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Start in the background (logs in <data_dir>/logs/stack.log)."
    ),
) -> None:
    """Start the whole stack (warehouse, collector, worker, Dagster, dashboards) via honcho.

    Applies the migrations once the warehouse answers. Stop it with Ctrl-C or `trackhouse down`.
    """
    settings = get_settings()
    # owner-only local state, also for a data directory made before that rule (README Security)
    secure_state(settings.data_dir, [settings.warehouse_password_file])
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    names = procfile_processes(settings)
    command = [sys.executable, "-m", "honcho", "-f", str(PROCFILE), "-d", str(PROJECT_ROOT),
               "start", *names]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if detach:
        log_file = (settings.logs_dir / "stack.log").open("ab")
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    else:
        process = subprocess.Popen(command, env=env, start_new_session=True)
    _pid_file(settings).write_text(str(process.pid))
    try:
        wait_for_warehouse(settings)
        from warehouse.migrate import migrate

        for migration in migrate(settings=settings):
            console.print(f"applied {migration.version:04d}_{migration.name}")
        prepare_metadata()
        if "collector" in names:  # what comes next (demo traffic, SDKs) needs it listening
            collector = f"http://{settings.collector_host}:{settings.collector_port}/health"
            wait_until_answering(collector, "collector", timeout_s=120.0)
    except Exception:
        os.killpg(process.pid, signal.SIGTERM)
        raise
    if detach:
        log_path = settings.logs_dir / "stack.log"
        console.print(f"stack started ({', '.join(names)}); logs: {log_path}")
        return
    try:
        raise typer.Exit(process.wait())
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGTERM)
        raise typer.Exit(process.wait()) from None


def down() -> None:
    """Stop a stack started by `trackhouse up`."""
    settings = get_settings()
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        console.print("no stack is running")
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        console.print("the stack had already stopped")
    else:
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        console.print("stack stopped")
    pid_file.unlink(missing_ok=True)


def status() -> None:
    """Say which of the stack's HTTP services answer."""
    settings = get_settings()
    checks = {
        "warehouse": f"{settings.effective_clickhouse_url}/ping",
        "collector": f"http://{settings.collector_host}:{settings.collector_port}/health",
        "dagster": f"http://{settings.dagster_host}:{settings.dagster_port}/server_info",
        "dashboards": f"http://{settings.app_host}:{settings.app_port}/_stcore/health",
    }
    for name, url in checks.items():
        try:
            ok = httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            ok = False
        console.print(f"{name:<11} {'[green]up[/]' if ok else '[red]down[/]'}  {url}")


def refresh(
    jobs: Annotated[list[str] | None, typer.Argument(
        help="Dagster jobs to run (default: incremental_marts, funnels_and_retention)."
    )] = None,
    timeout_s: float = typer.Option(900, help="Give up waiting after this many seconds."),
) -> None:
    """Queue marts refreshes in the running Dagster and wait for them to finish.

    The runs go through Dagster's run queue, so they never overlap a scheduled dbt run.
    """
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    settings = get_settings()
    client = DagsterGraphQLClient(settings.dagster_host, port_number=settings.dagster_port)
    deadline = time.monotonic() + timeout_s
    while True:  # the webserver may still be loading the code location
        try:
            run_ids = [(job, client.submit_job_execution(job))
                       for job in (jobs or ["incremental_marts", "funnels_and_retention"])]
            break
        except (DagsterGraphQLClientError, httpx.HTTPError, ConnectionError) as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dagster did not accept the runs: {error}") from error
            time.sleep(2)
    failed = False
    for job, run_id in run_ids:
        with console.status(f"{job}: running (run {run_id[:8]}, watch it at "
                            f"http://{settings.dagster_host}:{settings.dagster_port}/runs/{run_id})"):
            while (state := client.get_run_status(run_id).value) not in (
                "SUCCESS", "FAILURE", "CANCELED"
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{job} still {state} after {timeout_s:.0f} s")
                time.sleep(2)
        console.print(f"{job}: {state}")
        failed |= state != "SUCCESS"
    if failed:
        raise typer.Exit(1)

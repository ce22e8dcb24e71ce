"""``trackhouse dagster``: the Dagster webserver (UI) and daemon (schedules, sensors, run queue)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console

from trackhouse.settings import PROJECT_ROOT, get_settings

CODE_LOCATION = ["-m", "orchestration.definitions", "-d", str(PROJECT_ROOT)]


def register(app: typer.Typer) -> None:
    app.command("dagster")(serve_dagster)


def serve_dagster(
    host: str = typer.Option(None, help="UI bind address (default: TRACKHOUSE_DAGSTER_HOST)."),
    port: int = typer.Option(None, help="Port of the UI (default: TRACKHOUSE_DAGSTER_PORT, 3000)."),
) -> None:
    """Serve the Dagster UI and run the Dagster daemon (production style, not `dagster dev`).

    Prepares DAGSTER_HOME (<data_dir>/dagster, from dagster.yaml) and the dbt manifest first.
    Runs until either process exits or this one is stopped (Ctrl-C / SIGTERM).
    """
    from orchestration.instance import dagster_process_env, prepare_dagster_home
    from orchestration.project import prepare_manifest

    console = Console()
    settings = get_settings()
    home = prepare_dagster_home(settings)
    prepare_manifest()
    bin_dir = Path(sys.executable).parent
    host = host or settings.dagster_host
    env = {**dagster_process_env(settings), "TRACKHOUSE_DAGSTER_HOST": host}  # the guard's
    port = port or settings.dagster_port
    commands = {
        # dagster-webserver behind the Host/Origin/GraphQL-GET guard (orchestration/webserver)
        "webserver": [sys.executable, "-m", "orchestration.webserver", "-h", host, "-p",
                      str(port), *CODE_LOCATION],
        "daemon": [str(bin_dir / "dagster-daemon"), "run", *CODE_LOCATION],
    }
    console.print(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={home})")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    processes: dict[str, subprocess.Popen] = {}
    exit_code = 0
    # On a fresh instance the webserver and the daemon would both create the storage tables at
    # once and collide (sqlite: UNIQUE constraint failed: alembic_version); create them first.
    subprocess.run([str(bin_dir / "dagster"), "instance", "migrate"], env=env, cwd=PROJECT_ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    try:
        for name, command in commands.items():
            processes[name] = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)
        while True:
            exited = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
            if exited:
                name, exit_code = next(iter(exited.items()))
                console.print(f"dagster {name} exited with {exit_code}; stopping the other")
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        # SIGINT, not SIGTERM: on an interrupt the webserver and the daemon also shut down the
        # code servers they started.
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    raise typer.Exit(exit_code)

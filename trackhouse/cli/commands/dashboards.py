"""``trackhouse app`` (the Streamlit dashboards) and ``trackhouse admin bootstrap``."""

from __future__ import annotations

import os
import secrets
import sys

import typer
from rich.console import Console

from trackhouse.settings import PROJECT_ROOT, get_settings

admin_app = typer.Typer(help="Dashboard users.", no_args_is_help=True)
BOOTSTRAP_EMAIL = "admin@trackhouse.local"


def register(app: typer.Typer) -> None:
    app.command("app")(serve_app)
    app.add_typer(admin_app, name="admin")


def serve_app(
    host: str = typer.Option(None, help="Bind address (default: TRACKHOUSE_APP_HOST)."),
    port: int = typer.Option(None, help="Port (default: TRACKHOUSE_APP_PORT, 8501)."),
) -> None:
    """Serve the Streamlit dashboards (login required; users come from `trackhouse admin`)."""
    settings = get_settings()
    from accounts.db import upgrade

    upgrade()
    host = host or settings.app_host
    # app/serve.py: app/main.py behind the Host check (DNS rebinding protection)
    command = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app" / "serve.py"),
        "--server.address", host,
        "--server.port", str(port or settings.app_port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "TRACKHOUSE_APP_HOST": host}  # the Host check allows the bind address
    # Streamlit reads .streamlit/config.toml from the working directory: the repository root.
    os.chdir(PROJECT_ROOT)
    os.execvpe(command[0], command, env)


@admin_app.command("bootstrap")
def bootstrap(
    email: str = typer.Option(BOOTSTRAP_EMAIL, help="E-mail of the first admin."),
) -> None:
    """Create the first admin when no user exists and print its password once."""
    from accounts import service
    from accounts.db import session_scope, upgrade

    upgrade()
    console = Console()
    with session_scope() as session:
        if service.list_users(session):
            console.print("users already exist; nothing to do")
            return
        password = secrets.token_urlsafe(12)
        service.create_user(session, email=email, password=password, name="Admin",
                            is_admin=True)
    console.print("Created the first admin. Its password is shown only this once:")
    console.print(f"  e-mail:   {email}\n  password: {password}")

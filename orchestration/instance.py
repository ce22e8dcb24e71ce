"""The Dagster instance directory (DAGSTER_HOME) of ``trackhouse dagster``.

The instance configuration is ``dagster.yaml`` at the repository root, copied into DAGSTER_HOME
(``<data_dir>/dagster`` unless TRACKHOUSE_DAGSTER_HOME says otherwise) with the storage block
switched to PostgreSQL when TRACKHOUSE_DAGSTER_POSTGRES_URL is set. The URL itself stays in
the environment (the file reads it with ``env:``), so no password is written to disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from trackhouse.settings import PROJECT_ROOT, Settings

INSTANCE_TEMPLATE = PROJECT_ROOT / "dagster.yaml"
POSTGRES_URL_ENV = "TRACKHOUSE_DAGSTER_POSTGRES_URL"
NO_TELEMETRY_ENV = {
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
}


def instance_config(settings: Settings) -> dict[str, Any]:
    config = yaml.safe_load(INSTANCE_TEMPLATE.read_text())
    if settings.dagster_postgres_url is not None:
        config["storage"] = {"postgres": {"postgres_url": {"env": POSTGRES_URL_ENV}}}
    return config


def prepare_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME and write its dagster.yaml (atomically: several processes may start
    at once); returns the directory."""
    home = settings.effective_dagster_home
    home.mkdir(parents=True, exist_ok=True)
    staged = home / f".dagster.yaml.{os.getpid()}"
    staged.write_text(
        f"# Written by `trackhouse dagster` from {INSTANCE_TEMPLATE}; edit that file instead.\n"
        + yaml.safe_dump(instance_config(settings), sort_keys=False)
    )
    staged.replace(home / "dagster.yaml")
    return home


def dagster_process_env(settings: Settings) -> dict[str, str]:
    """Environment of the Dagster processes: this one's, DAGSTER_HOME, telemetry off, and the
    PostgreSQL URL when one is configured (it may come from a .env file, not the environment)."""
    env = {**os.environ, "DAGSTER_HOME": str(settings.effective_dagster_home), **NO_TELEMETRY_ENV}
    if settings.dagster_postgres_url is not None:
        env[POSTGRES_URL_ENV] = psycopg2_url(settings.dagster_postgres_url.get_secret_value())
    return env


def psycopg2_url(url: str) -> str:
    """Name the psycopg2 driver in a bare ``postgresql://`` URL.

    dagster-postgres is written for psycopg2, but SQLAlchemy 2.1 maps a bare ``postgresql://``
    to psycopg 3, whose server-side parameters break Dagster's ``NOTIFY run_events, %s``.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg2://{rest}"
    return url

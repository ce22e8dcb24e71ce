"""Run the dbt project (``dbt_project/``) against the Trackhouse warehouse.

``dbt_project/profiles.yml`` reads its connection from environment variables; ``dbt_env``
derives them from the one settings object, so the CLI, Dagster and the tests all point dbt at
the warehouse the rest of Trackhouse uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from trackhouse import event_times
from trackhouse.settings import PROJECT_ROOT, Settings, get_settings

if TYPE_CHECKING:  # dbt is imported only when it runs: importing it takes a second or two
    from dbt.cli.main import dbtRunnerResult

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

# What the scheduled builds leave out: the unit tests check the models' SQL on fixed inputs, so
# they run in CI (the test suite builds with them), not on every 5-minute tick, as dbt Labs
# advises (docs/decisions/0047).
JOB_BUILD_EXCLUDES = ("--exclude-resource-type", "unit_test")

# The dbt tag of the models built hourly (the funnels_and_retention job) rather than every 5
# minutes: the slow marts, and what only they read (docs/decisions/0048). HOURLY_SELECTION is
# that job's dbt selection; the 5-minute job builds every other model.
HOURLY_TAG = "hourly"
HOURLY_SELECTION = (f"tag:{HOURLY_TAG}", "resource_type:seed")


def dbt_env(settings: Settings | None = None) -> dict[str, str]:
    """The environment variables ``profiles.yml`` and the sources read, from the settings."""
    settings = settings or get_settings()
    endpoint = settings.clickhouse_endpoint
    return {
        "TRACKHOUSE_DBT_HOST": endpoint.host,
        "TRACKHOUSE_DBT_PORT": str(endpoint.port),
        "TRACKHOUSE_DBT_SECURE": "true" if endpoint.secure else "false",
        "TRACKHOUSE_DBT_USER": settings.clickhouse_user,
        "TRACKHOUSE_DBT_PASSWORD": settings.clickhouse_password.get_secret_value(),
        "TRACKHOUSE_RAW_DATABASE": settings.raw_database,
        "TRACKHOUSE_ANALYTICS_DATABASE": settings.analytics_database,
        "TRACKHOUSE_DBT_MAX_PARTITIONS_PER_INSERT": str(event_times.weeks_in_range()),
        # dbt_project/macros/apply_grants.sql: grants are skipped on the embedded warehouse
        "TRACKHOUSE_DBT_EMBEDDED": "true" if settings.embedded_warehouse else "false",
        # one setting lays out both the raw tables and the models on a cluster (0019)
        "TRACKHOUSE_DBT_TARGET": "cluster" if settings.clickhouse_cluster else "default",
        "TRACKHOUSE_DBT_CLUSTER": settings.clickhouse_cluster or "",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "DO_NOT_TRACK": "1",
    }


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_dbt(args: Sequence[str], settings: Settings | None = None) -> dbtRunnerResult:
    """Invoke dbt in-process (``dbtRunner``) on the project, e.g. ``run_dbt(["build"])``.

    ``--project-dir`` / ``--profiles-dir`` default to ``dbt_project/``; the connection comes
    from ``dbt_env(settings)``. Returns dbt's ``dbtRunnerResult`` (``.success``, ``.result``).
    """
    from dbt.cli.main import dbtRunner

    args = list(args)
    is_subcommand = bool(args) and not args[0].startswith("-")  # not `--help` / `--version`
    for option in ("--project-dir", "--profiles-dir"):
        if is_subcommand and option not in args:
            args += [option, str(DBT_PROJECT_DIR)]
    with _environment(dbt_env(settings)):
        return dbtRunner().invoke(args)

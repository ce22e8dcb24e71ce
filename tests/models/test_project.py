"""The dbt project's plumbing: settings -> dbt environment, and the `trackhouse dbt` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from trackhouse.dbt import dbt_env
from trackhouse.settings import Settings


def test_dbt_env_follows_the_settings() -> None:
    settings = Settings(
        clickhouse_url="https://ch.example.com", clickhouse_user="analyst",
        clickhouse_password=SecretStr("s3cret"), raw_database="raw_x",
        analytics_database="marts_x",
    )
    env = dbt_env(settings)
    assert env["TRACKHOUSE_DBT_HOST"] == "ch.example.com"
    assert env["TRACKHOUSE_DBT_PORT"] == "8443"
    assert env["TRACKHOUSE_DBT_SECURE"] == "true"
    assert env["TRACKHOUSE_DBT_USER"] == "analyst"
    assert env["TRACKHOUSE_DBT_PASSWORD"] == "s3cret"
    assert env["TRACKHOUSE_RAW_DATABASE"] == "raw_x"
    assert env["TRACKHOUSE_ANALYTICS_DATABASE"] == "marts_x"
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "False"

    embedded = dbt_env(Settings(clickhouse_url=None, warehouse_port=18123))
    assert embedded["TRACKHOUSE_DBT_HOST"] == "127.0.0.1"
    assert embedded["TRACKHOUSE_DBT_PORT"] == "18123"
    assert embedded["TRACKHOUSE_DBT_SECURE"] == "false"


def test_trackhouse_dbt_passes_arguments_through(tmp_path: Path) -> None:
    trackhouse = Path(sys.executable).parent / "trackhouse"
    listed = subprocess.run(
        [str(trackhouse), "dbt", "ls", "--resource-type", "model", "--output", "name",
         "--select", "marts", "--target-path", str(tmp_path), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    names = set(listed.stdout.split())
    assert {"sessions", "daily_metrics", "funnel_steps", "retention", "profiles",
            "hourly_metrics", "daily_visitor_states", "events_current"} <= names

    failed = subprocess.run(
        [str(trackhouse), "dbt", "run", "--select", "no_such_model", "--fail-fast",
         "--warn-error", "--target-path", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert failed.returncode == 1

"""A real dagster-daemon, with a one-minute schedule, completes a scheduled run by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetMaterialization, DagsterInstance, DagsterRunStatus, RunsFilter
from orchestration_support import sample_events

from trackhouse.settings import PROJECT_ROOT, Settings

SCHEDULE = "incremental_marts_schedule"
# a tick comes at the next minute boundary (<= 60 s), then the run itself: start a run worker,
# observe the raw tables, dbt build
DEADLINE_S = 240  # alone the test takes 105-135 s here; CI runs it beside another worker


@pytest.mark.timeout(DEADLINE_S + 60)
def test_daemon_completes_a_scheduled_run(
    tmp_path: Path, built_marts: Any, redis_server: Any, ch: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The marts are built already (built_marts); an event landed now must reach the sessions
    mart through a run the daemon starts on its own at the next minute."""
    from orchestration.checks import mart_keys
    from orchestration.instance import dagster_process_env, prepare_dagster_home
    from orchestration.project import dbt_manifest
    from trackhouse.settings import get_settings

    analytics = get_settings().analytics_database
    device = f"daemon-{uuid.uuid4().hex[:8]}"
    new_event = sample_events(datetime.now(UTC), device)
    ch.insert(f"{get_settings().raw_database}.events", [list(new_event[0].values())],
              column_names=list(new_event[0]))
    overrides = {
        "TRACKHOUSE_DAGSTER_HOME": str(tmp_path / "dagster"),
        "TRACKHOUSE_MARTS_INTERVAL_MINUTES": "1",
    }
    settings = Settings(**{k.removeprefix("TRACKHOUSE_").lower(): v for k, v in overrides.items()})
    home = prepare_dagster_home(settings)
    env = {**dagster_process_env(settings), **overrides}
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # dagster.yaml reads it (storage base_dir)

    with DagsterInstance.from_config(str(home)) as instance:
        # "built before": the first-build sensor stays quiet, so only the schedule starts runs
        for key in mart_keys(dbt_manifest(), slow=False) + mart_keys(dbt_manifest(), slow=True):
            instance.report_runless_asset_event(AssetMaterialization(asset_key=key))

        log = (tmp_path / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run",
             "-m", "orchestration.definitions", "-d", str(PROJECT_ROOT)],
            env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server and run workers go down with it
        )
        try:
            run = _wait_for_scheduled_run(instance, daemon, time.monotonic() + DEADLINE_S)
        finally:
            _stop(daemon)
            log.close()
        assert run.status == DagsterRunStatus.SUCCESS, (tmp_path / "daemon.log").read_text()[-4000:]
        assert run.tags["trackhouse/dbt"] == "build"

    sessions = ch.query(
        f"select count() from `{analytics}`.sessions where device_id = {{d:String}}",
        parameters={"d": device},
    ).first_row[0]
    assert sessions > 0, "the scheduled run did not bring the new event into the sessions mart"


def _wait_for_scheduled_run(instance: DagsterInstance, daemon: subprocess.Popen,
                            deadline: float) -> Any:
    finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "dagster-daemon exited"
        runs = instance.get_runs(RunsFilter(tags={"dagster/schedule_name": SCHEDULE}), limit=1)
        if runs and runs[0].status in finished:
            return runs[0]
        time.sleep(1)
    pytest.fail(f"no run of {SCHEDULE} finished within {DEADLINE_S} s")


def _stop(daemon: subprocess.Popen) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGINT)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(daemon.pid, signal.SIGKILL)  # whatever it left behind in its session
    except ProcessLookupError:
        pass
    daemon.wait()

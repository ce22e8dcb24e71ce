"""Orchestration benchmark: Dagster's cost over a bare dbt build, and tick-to-fresh-marts time.

    .venv/bin/python bench/orchestration.py [--events 200000] [--rounds 3] [--ticks 2]

Runs on this machine in one go, with a temporary data directory: the embedded warehouse on a
free port (or the ClickHouse named by TRACKHOUSE_CLICKHOUSE_URL), ``--events`` synthetic raw
events over 30 days in two projects, and a first full ``dbt build``. Then:

1. Incremental rebuild, bare vs Dagster (``--rounds`` times, alternating, each after landing
   1,000 new events): ``dbt build`` of the incremental selection as a plain subprocess, and the
   ``incremental_marts`` job run by Dagster in-process (observing the raw tables, the same dbt
   build, the collector checks). Ratio of the medians.
2. A real ``dagster-daemon`` with a one-minute schedule (``--ticks`` ticks): new events land
   just after a tick; figures per tick: schedule tick -> run launched -> run finished -> the
   new events visible in the ``sessions`` mart, and the run's wall time over the bare build.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/warehouse.py (another benchmark) would shadow the warehouse package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import EmbeddedWarehouse, free_port  # noqa: E402  (the test suite's helpers)

sys.path.remove(str(ROOT / "tests"))  # tests/warehouse/ would shadow the warehouse package

BIN = Path(sys.executable).parent
PROJECTS = ("bench-a", "bench-b")


def insert_events(client, raw: str, count: int, days: float, marker: str = "") -> None:  # noqa: ANN001
    """``count`` events spread over the last ``days`` days; devices 'd<n>' (or marker-led)."""
    client.command(
        f"""
        insert into `{raw}`.events (id, project_id, name, device_id, profile_id, session_id,
            created_at, received_at, origin, path, referrer_name, referrer_type, country,
            browser, os, device)
        select generateUUIDv4(),
            if(number % 2 = 0, {{a:String}}, {{b:String}}),
            multiIf(number % 9 = 0, 'signup', number % 23 = 0, 'purchase', 'screen_view'),
            concat({{marker:String}}, 'd', toString(cityHash64(number, {{marker:String}}) % 20000)),
            '', '',
            now64(3, 'UTC') - toIntervalMillisecond(
                intDiv(number * toUInt64({{span_ms:UInt64}}), {{count:UInt64}})),
            now64(3, 'UTC'),
            'https://bench.test', concat('/page/', toString(number % 60)),
            ['', 'Google', 'Twitter'][number % 3 + 1],
            ['direct', 'search', 'social'][number % 3 + 1],
            ['DE', 'FR', 'US', 'BR'][number % 4 + 1], 'Firefox', 'Linux', 'desktop'
        from numbers({{count:UInt64}})
        """,
        parameters={"a": PROJECTS[0], "b": PROJECTS[1], "marker": marker, "count": count,
                    "span_ms": int(days * 86_400_000)},
    )


def bare_dbt_build(selection_args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "dbt"), "build", *selection_args, "--project-dir", str(ROOT / "dbt_project"),
         "--profiles-dir", str(ROOT / "dbt_project"), "--quiet"],
        env=env, check=True, cwd=ROOT / "dbt_project",
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ticks", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trackhouse-bench-orchestration-"))
    os.environ.update({"TRACKHOUSE_DATA_DIR": str(work / "data"),
                       "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1",
                       "DAGSTER_DISABLE_TELEMETRY": "1"})
    embedded = None
    if not os.environ.get("TRACKHOUSE_CLICKHOUSE_URL"):
        embedded = EmbeddedWarehouse(host="127.0.0.1", port=free_port(), data_dir=work / "ch",
                                     log_path=work / "warehouse.log", env={**os.environ})
        embedded.start()
        os.environ["TRACKHOUSE_CLICKHOUSE_URL"] = embedded.url
    # own analytics database, so a shared ClickHouse keeps its marts
    os.environ["TRACKHOUSE_ANALYTICS_DATABASE"] = f"bench_analytics_{uuid.uuid4().hex[:6]}"
    try:
        run(args, work)
    finally:
        if embedded:
            embedded.stop()


def run(args: argparse.Namespace, work: Path) -> None:
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse
    from warehouse.migrate import migrate

    settings = get_settings()
    migrate()
    client = warehouse()
    raw, analytics = settings.raw_database, settings.analytics_database
    now = datetime.now(UTC)
    client.insert(f"`{raw}`.projects", [[p, p, "bench.test", "UTC", now, now, 0] for p in PROJECTS],
                  column_names=["id", "name", "domain", "timezone", "created_at", "updated_at",
                                "is_deleted"])
    started = time.perf_counter()
    insert_events(client, raw, args.events, days=30)
    loaded_s = time.perf_counter() - started
    print(f"raw events: {args.events:,} over 30 days, loaded in {loaded_s:.1f} s")

    from dagster import (
        AssetKey,
        AssetMaterialization,
        DagsterEventType,
        DagsterInstance,
        DagsterRunStatus,
        instance_for_test,
    )

    from orchestration.checks import mart_keys
    from orchestration.definitions import defs
    from orchestration.instance import dagster_process_env, prepare_dagster_home
    from orchestration.project import apply_dbt_env, dbt_manifest, prepare_manifest
    from orchestration.schedules import SLOW_SELECTION

    prepare_manifest()
    apply_dbt_env()
    env = {**os.environ}
    # what the incremental_marts job hands to dbt: its models, no tests (they run hourly)
    selection = ["--resource-type", "model", "--exclude", *SLOW_SELECTION.split()]
    full = bare_dbt_build([], env)
    print(f"first full dbt build (every model, seeds, tests): {full:.1f} s")

    job = defs.resolve_job_def("incremental_marts")
    bare_times, dagster_times = [], []
    with instance_for_test() as instance:
        for _ in range(args.rounds):
            insert_events(client, raw, 1_000, days=0.01, marker="new")
            bare_times.append(bare_dbt_build(selection, env))
            insert_events(client, raw, 1_000, days=0.01, marker="new")
            started = time.perf_counter()
            result = job.execute_in_process(instance=instance)
            dagster_times.append(time.perf_counter() - started)
            assert result.success
    bare, dagster = statistics.median(bare_times), statistics.median(dagster_times)
    print(f"incremental build, median of {args.rounds}: bare dbt build {bare:.1f} s, "
          f"Dagster job in-process {dagster:.1f} s -> ratio {dagster / bare:.2f}x")

    # --- a real daemon: schedule tick -> marts updated --------------------------------------
    os.environ["TRACKHOUSE_MARTS_INTERVAL_MINUTES"] = "1"
    get_settings.cache_clear()
    settings = get_settings()
    home = prepare_dagster_home(settings)
    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.get() as instance:
        # the marts exist already: keep the first-build sensor quiet, time only the schedule
        for key in mart_keys(dbt_manifest(), slow=False) + mart_keys(dbt_manifest(), slow=True):
            instance.report_runless_asset_event(AssetMaterialization(asset_key=key))
    log = (work / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", "orchestration.definitions", "-d", str(ROOT)],
        env=dagster_process_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    schedule_tag = {"dagster/schedule_name": "incremental_marts_schedule"}
    try:
        with DagsterInstance.get() as instance:
            for tick in range(args.ticks):
                # land probe events at least 5 s before the next minute boundary (the tick)
                while 60 - datetime.now(UTC).second <= 5:
                    time.sleep(0.5)
                marker = f"tick{tick}-"
                insert_events(client, raw, 1_000, days=0.001, marker=marker)
                landed_at = time.time()
                record = wait_for_run(instance, schedule_tag, after=landed_at)
                assert record.dagster_run.status == DagsterRunStatus.SUCCESS, "run failed"
                assert visible(client, analytics, marker), "probe events missing from sessions"
                created = record.create_timestamp.timestamp()
                tick_at = created - created % 60  # the cron fires on the minute
                sessions_built = max(
                    event.timestamp for event in instance.get_records_for_run(
                        record.dagster_run.run_id,
                        of_type=DagsterEventType.ASSET_MATERIALIZATION).records
                    if event.event_log_entry.asset_materialization.asset_key == AssetKey("sessions")
                )
                wall, worker = record.end_time - created, record.end_time - record.start_time
                print(f"tick {tick + 1}: run queued {created - tick_at:.1f} s after the tick, "
                      f"worker started {record.start_time - tick_at:.1f} s, sessions mart "
                      f"updated {sessions_built - tick_at:.1f} s, run finished "
                      f"{record.end_time - tick_at:.1f} s; run wall time {wall:.1f} s = "
                      f"{wall / bare:.2f}x the bare build (run worker {worker:.1f} s = "
                      f"{worker / bare:.2f}x)")
    finally:
        daemon.send_signal(signal.SIGINT)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(daemon.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        client.close()


def wait_for_run(instance, tags: dict[str, str], after: float, timeout_s: float = 200):  # noqa: ANN001, ANN201
    """The first run with ``tags`` created after ``after`` (epoch s), once it has finished."""
    from dagster import DagsterRunStatus, RunsFilter

    finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = [r for r in instance.get_run_records(RunsFilter(tags=tags), limit=5)
                   if r.create_timestamp.timestamp() > after]
        if records and records[-1].dagster_run.status in finished:
            return records[-1]
        time.sleep(0.2)
    raise TimeoutError(f"no run tagged {tags} finished within {timeout_s:.0f} s")


def visible(client, analytics: str, marker: str) -> bool:  # noqa: ANN001
    return bool(client.query(
        f"select count() from `{analytics}`.sessions where startsWith(device_id, {{m:String}})",
        parameters={"m": marker},
    ).first_row[0])


if __name__ == "__main__":
    main()

"""Benchmark of the dbt project: a full build over ~10 million raw events, then an incremental
run after one more hour of events. Prints the wall times and per-model timings.

The builds are the scheduled jobs' (orchestration/schedules.py): dbt parses the project first,
untimed, as a deployment prepares its manifest (each Dagster invocation then starts from that
parse); the full build is the full_refresh job's `dbt build`, the 5-minute job incremental_marts'
(its models, no tests) and the hourly job funnels_and_retention's (the models tagged hourly, the
seeds and every data test), all without the unit tests (trackhouse.dbt.JOB_BUILD_EXCLUDES).

    .venv/bin/python bench/models.py [--events 10000000] [--days 30] [--job-runs 5]

The events are generated inside ClickHouse (INSERT ... SELECT from numbers()) with skewed,
realistic distributions: returning visitors, sessions of a few events minutes apart, page
views mostly, custom events (the steps of the seed's funnels), 1 % retried duplicates, 2 % bots,
the three demo projects of funnels.csv in three time zones. The benchmark starts its own
embedded warehouse on a free port with a temporary data directory, or uses
TRACKHOUSE_CLICKHOUSE_URL when set (with private databases). With --data-dir the warehouse's
data directory is kept and the generated events are kept in a database of their own
(bench_models_source): a later run with the same --events and --days attaches a copy of their
parts (hard links, seconds) instead of generating them again (minutes on a loaded machine), so
runs of two trees, alternated, build over the same events.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # after ROOT: tests/warehouse/ must not shadow the package
from conftest import EmbeddedWarehouse, free_port  # noqa: E402  (the test suite's helpers)

sys.path.append(str(ROOT / "bench"))
from ingest import tree_cpu_seconds  # noqa: E402  (bench/ingest.py's helper)

EVENTS_PER_SESSION = 3.95  # mean of the session-length distribution below

# One row per event of `{sessions}` sessions starting within `{seconds}` seconds before `{end}`.
GENERATE_EVENTS = """
insert into {raw}.events
    (id, project_id, name, device_id, profile_id, session_id, created_at, received_at,
     origin, path, query, referrer, referrer_name, referrer_type, utm_source, utm_medium,
     utm_campaign, country, region, city, os, browser, device, properties, is_bot)
with sessions as (
    select
        number + {first_session} as s,
        sipHash64(s, 1) as h1,
        sipHash64(s, 2) as h2,
        sipHash64(s, 3) as h3,
        multiIf(h1 % 10 < 6, 'demo-shop', h1 % 10 < 9, 'demo-blog', 'demo-app') as project_id,
        -- returning visitors: a skewed pick from the device pool
        toUInt64(pow((h2 % 1000003) / 1000003, 2.5) * {devices}) as device_no,
        toDateTime64('{end}', 3, 'UTC')
            - toIntervalMillisecond(h3 % ({seconds} * 1000)) as started_at,
        -- geometric-ish session length, mean ~3.95 events
        1 + toUInt8(floor(-log(1 - (h1 % 9973 + 1) / 9975) * 3.4)) as event_count
    from numbers({sessions})
)
select
    generateUUIDv4(s * 64 + i) as id,
    project_id,
    if(i = 0 or h1 % 7 != i % 7, 'screen_view',
       ['add_to_cart', 'purchase', 'signup_started', 'signup_completed', 'newsletter_subscribe',
        'report_created'][1 + (h2 + i) % 6]
    ) as name,
    lower(hex(sipHash64(project_id, device_no))) as device_id,
    if(device_no % 5 = 0, concat('user-', toString(device_no)), '') as profile_id,
    toString(s) as session_id,
    started_at + toIntervalMillisecond(i * (20000 + (h3 + i * 7919) % 100000)) as created_at,
    created_at + toIntervalMillisecond(50 + h2 % 2000) as received_at,
    concat('https://', project_id, '.example.com') as origin,
    ['/', '/pricing', '/docs', '/blog', '/about', '/signup', '/docs/start', '/blog/post-1',
     '/blog/post-2', '/contact'
    ][1 + toUInt64(pow(((h3 + i * 104729) % 1009) / 1009, 2) * 10)] as path,
    if(h1 % 13 = 0, '?ref=x', '') as query,
    ['', 'https://www.google.com/', 'https://news.ycombinator.com/', 'https://twitter.com/',
     'https://github.com/'][1 + h2 % 5] as referrer,
    ['', 'Google', 'Hacker News', 'Twitter', 'GitHub'][1 + h2 % 5] as referrer_name,
    ['direct', 'search', 'link', 'social', 'link'][1 + h2 % 5] as referrer_type,
    if(h3 % 11 = 0, 'newsletter', '') as utm_source,
    if(h3 % 11 = 0, 'email', '') as utm_medium,
    if(h3 % 11 = 0, 'launch', '') as utm_campaign,
    ['US', 'DE', 'FR', 'GB', 'IN', 'BR'][1 + device_no % 6] as country,
    ['CA', 'BE', 'IDF', 'ENG', 'KA', 'SP'][1 + device_no % 6] as region,
    ['San Francisco', 'Berlin', 'Paris', 'London', 'Bangalore', 'Sao Paulo'][1 + device_no % 6]
        as city,
    ['Windows', 'Mac OS', 'iOS', 'Android', 'Linux'][1 + device_no % 5] as os,
    ['Chrome', 'Safari', 'Firefox', 'Edge'][1 + device_no % 4] as browser,
    ['desktop', 'mobile', 'tablet'][1 + device_no % 3] as device,
    map('plan', ['free', 'pro'][1 + h1 % 2]) as properties,
    h1 % 50 = 0 as is_bot
from sessions
array join range(event_count) as i
"""

# Retried deliveries that slipped through the collector: a copy received a few seconds later.
DUPLICATE_EVENTS = """
insert into {raw}.events
select * replace (received_at + toIntervalSecond(3) as received_at)
from {raw}.events
where received_at > '{since}' and cityHash64(id) % 100 = 0
"""

# Events queued offline by their SDK: happened up to 7 days ago, received now.
LATE_EVENTS = """
insert into {raw}.events
select * replace (
    generateUUIDv4(cityHash64(id, 'late')) as id,
    created_at - toIntervalSecond(cityHash64(id) % (7 * 86400)) as created_at
)
from {raw}.events
where received_at > '{since}' and cityHash64(id) % 1000 < {late_per_mille}
"""


# dbt's debug log (dbt.log): the statement a node sends, then its status with the time it took
LOG_LINE = re.compile(r"^(?:\x1b\[0m)?\d\d:\d\d:\d\d\.\d+ +\[(\w+) *\] \[([^\]]*)\]: (.*)$")
STATEMENT = re.compile(r"(?:\w+ adapter: )?On ([\w.]+): (.*)")
STATUS = re.compile(r"(?:\w+ adapter: )?SQL status: .* in ([\d.]+) seconds")


def statement_timings(log: Path, nodes: set[str]) -> dict[str, list[tuple[float, str]]]:
    """Per dbt node of ``nodes``, each SQL statement it ran (first words) and its seconds."""
    timings: dict[str, list[tuple[float, str]]] = {}
    pending: dict[str, tuple[str, list[str]]] = {}  # thread -> (node, statement lines)
    current = None
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match is None:
            if current is not None:
                current[1].append(line)
            continue
        _, thread, message = match.groups()
        current = None
        if (statement := STATEMENT.match(message)) and statement.group(1) in nodes:
            current = pending[thread] = (statement.group(1), [statement.group(2)])
        elif (status := STATUS.match(message)) and thread in pending:
            node, lines = pending.pop(thread)
            text = " ".join(" ".join(lines).split())
            text = re.sub(r"/\*.*?\*/", "", text).strip()
            timings.setdefault(node, []).append((float(status.group(1)), text[:90]))
    return timings


def print_statements(log: Path, target: Path, models: int) -> None:
    """The statements of the ``models`` slowest models of the last run, slowest first, and how
    much of each model's time its logged SQL took (the rest is dbt's own work for the model
    and queries the adapter sends unlogged, such as on_schema_change's `LIMIT 0` probe)."""
    ranked = [(uid, took) for uid, _, took in model_timings(target) if uid.startswith("model.")]
    timings = statement_timings(log, {uid for uid, _ in ranked})
    sql = sum(took for rows in timings.values() for took, _ in rows)
    count = sum(len(rows) for rows in timings.values())
    print(f"  logged SQL: {count} statements, {sql:.1f} s of the models' "
          f"{sum(took for _, took in ranked):.1f} s")
    for uid, took in ranked[:models]:
        rows = sorted(timings.get(uid, []), reverse=True)
        print(f"  {uid.split('.')[-1]} ({took:.2f} s, SQL {sum(t for t, _ in rows):.2f} s in "
              f"{len(rows)}): " + "; ".join(f"{t:.2f} s {text[:60]}" for t, text in rows[:4]))


def model_timings(target: Path) -> list[tuple[str, str, float]]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    rows = [(r["unique_id"], r["status"], float(r["execution_time"])) for r in results]
    return sorted(rows, key=lambda row: -row[2])


def node_span(target: Path) -> float:
    """Seconds from the first node's start to the last node's end in the last run: the rest
    of a command's wall time is dbt's start (parsing, the relation cache) and end."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    moments = [datetime.fromisoformat(step[key].replace("Z", "+00:00"))
               for result in results for step in result["timing"]
               for key in ("started_at", "completed_at") if step.get(key)]
    return (max(moments) - min(moments)).total_seconds() if moments else 0.0


def print_timings(title: str, seconds: float, target: Path, top: int) -> None:
    timings = model_timings(target)
    models = [t for t in timings if t[0].startswith(("model.", "seed."))]
    tests = [t for t in timings if t[0].startswith(("test.", "unit_test."))]
    span = node_span(target)
    print(f"\n== {title}: {seconds:.1f} s wall "
          f"({len(models)} models/seeds in {sum(t[2] for t in models):.1f} s, "
          f"{len(tests)} tests in {sum(t[2] for t in tests):.1f} s; nodes ran for {span:.1f} s, "
          f"dbt's start and end took {seconds - span:.1f} s)")
    for unique_id, status, took in models[:top]:
        print(f"  {took:7.2f} s  {status:8s} {unique_id.split('.')[-1]}")
    if tests:
        slowest = tests[0]
        print(f"  slowest test: {slowest[0].split('.')[-1]} {slowest[2]:.2f} s")



def print_cpu(cpu_spent: dict[str, list[tuple[float, float]]], total: int,
              note: str = "") -> None:
    print(f"\nCPU seconds (dbt process / warehouse, the mean of a command's runs; {total:,} raw "
          f"events in the full build{', ' + note if note else ''}):")
    for command, runs in cpu_spent.items():
        own, house = (statistics.mean(column) for column in zip(*runs, strict=True))
        print(f"  dbt {command}{f' ({len(runs)} runs)' if len(runs) > 1 else ''}: {own:.1f} / "
              f"{house:.1f}; per raw event of the full build {(own + house) / total * 1e6:.2f} us")


def start_embedded_warehouse(data_dir: Path, folder: str = "warehouse") -> EmbeddedWarehouse:
    """An embedded warehouse keeping its data in ``data_dir / folder``, which this process's
    settings (``TRACKHOUSE_CLICKHOUSE_URL``) then point at."""
    embedded = EmbeddedWarehouse(host="127.0.0.1", port=free_port(),
                                 data_dir=data_dir / folder,
                                 log_path=data_dir / "warehouse.log", env={**os.environ})
    embedded.start()
    os.environ["TRACKHOUSE_CLICKHOUSE_URL"] = embedded.url
    return embedded


def scratch_databases(send_receive_timeout: int) -> tuple[Any, Any]:
    """Settings naming a raw and an analytics database of this run's own, and a client."""
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    suffix = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(update={
        "raw_database": f"bench_raw_{suffix}", "analytics_database": f"bench_analytics_{suffix}",
    })
    return settings, warehouse(settings, send_receive_timeout=send_receive_timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--late-per-mille", type=int, default=5,
                        help="share of the new hour's events that are late arrivals (per mille)")
    parser.add_argument("--top", type=int, default=30, help="models to list per run")
    parser.add_argument("--statements", type=int, default=0, metavar="N",
                        help="also print the slowest SQL statements of the N slowest models")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the warehouse here and reuse the events generated there")
    parser.add_argument("--keep-databases", action="store_true",
                        help="leave this run's raw and analytics databases in --data-dir's "
                             "warehouse (their names are printed), to look into afterwards")
    parser.add_argument("--job-runs", type=int, default=1, metavar="N",
                        help="time the 5-minute job N times, each after one more hour")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="copy each step's run_results.json here (for a timeline)")
    parser.add_argument("--full-build-only", action="store_true",
                        help="stop after the full build (its figures alone)")
    args = parser.parse_args()

    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    workdir = Path(tempfile.mkdtemp(prefix="trackhouse-bench-models-"))
    embedded = None
    if not os.environ.get("TRACKHOUSE_CLICKHOUSE_URL"):
        kept = args.data_dir or workdir
        kept.mkdir(parents=True, exist_ok=True)
        embedded = start_embedded_warehouse(kept)

    from trackhouse.dbt import HOURLY_SELECTION, HOURLY_TAG, JOB_BUILD_EXCLUDES, run_dbt
    from warehouse.migrate import migrate

    settings, client = scratch_databases(send_receive_timeout=1800)
    raw = settings.raw_database
    target = workdir / "target"

    logs = workdir / "logs"

    # dbt command -> (dbt, warehouse) CPU s of each run of it
    cpu_spent: dict[str, list[tuple[float, float]]] = {}

    def warehouse_cpu() -> float:
        return tree_cpu_seconds(embedded.process.pid) if embedded and embedded.process else 0.0

    def dbt(*dbt_args: str) -> float:
        shutil.rmtree(logs, ignore_errors=True)
        started, own, house = time.perf_counter(), time.process_time(), warehouse_cpu()
        result = run_dbt([*dbt_args, "--target-path", str(target), "--log-path", str(logs),
                          "--quiet"], settings)
        took = time.perf_counter() - started
        # dbt runs in this process; its SQL runs in the warehouse (docs/capacity.md)
        cpu_spent.setdefault(" ".join(dbt_args), []).append(
            (time.process_time() - own, warehouse_cpu() - house))
        if not result.success:
            raise SystemExit(f"dbt {' '.join(dbt_args)} failed: {result.exception or ''}")
        return took

    def keep_results(title: str) -> None:
        if args.results_dir:
            args.results_dir.mkdir(parents=True, exist_ok=True)
            slug = re.sub(r"[^a-z0-9]+", "-", title.split(":")[0].lower()).strip("-")
            shutil.copy(target / "run_results.json", args.results_dir / f"{slug}.json")

    def report(title: str, seconds: float) -> None:
        print_timings(title, seconds, target, args.top)
        keep_results(title)
        if args.statements:
            print_statements(logs / "dbt.log", target, args.statements)

    try:
        migrate(client, settings)
        client.command(
            f"insert into {raw}.projects (id, name, domain, timezone, created_at, updated_at) "
            "values ('demo-shop', 'Shop', 'shop.example.com', 'UTC', now64(3), now64(3)), "
            "('demo-blog', 'Blog', 'blog.example.org', 'Europe/Berlin', now64(3), now64(3)), "
            "('demo-app', 'App', 'app.example.io', 'America/New_York', now64(3), now64(3))"
        )
        sessions = int(args.events / EVENTS_PER_SESSION / 1.01)  # 1 % duplicates come on top
        devices = max(sessions // 2, 1)
        started = time.perf_counter()
        # the hours added after the full build must lie in the past: the incremental models'
        # watermarks ignore times after their run started (macros/incremental_watermark.sql)
        latest_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) \
            - timedelta(hours=args.job_runs + 2)
        end = reuse_events(client, raw, args.events, args.days, latest_end) \
            if args.data_dir else None
        reused = end is not None
        if end is None:
            end = latest_end
            client.command(GENERATE_EVENTS.format(
                raw=raw, first_session=0, sessions=sessions, devices=devices,
                end=end.strftime("%Y-%m-%d %H:%M:%S"), seconds=args.days * 86400,
            ))
            client.command(DUPLICATE_EVENTS.format(raw=raw, since="1970-01-01 00:00:00"))
            if args.data_dir:
                keep_events(client, raw, args.events, args.days, end)
        generated = time.perf_counter() - started
        total = client.query(f"select count() from {raw}.events").first_row[0]
        print(f"{'attached the kept' if reused else 'generated'} "
              f"{total:,} raw events over {args.days} days in {generated:.1f} s")

        dbt("parse")  # the deployment's prepared manifest (untimed)
        full = dbt("build", *JOB_BUILD_EXCLUDES)
        report("full dbt build (models, seeds and data tests: the full_refresh job's)", full)
        if args.full_build_only:
            print_cpu(cpu_spent, total)
            return

        hour_sessions = int(sessions / (args.days * 24))

        def add_hour(hour: int, late_per_mille: int) -> None:
            since = client.query(f"select max(received_at) from {raw}.events").first_row[0]
            since_text = since.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            client.command(GENERATE_EVENTS.format(
                raw=raw, first_session=sessions + hour * hour_sessions, sessions=hour_sessions,
                devices=devices, end=(end + timedelta(hours=hour)).strftime("%Y-%m-%d %H:%M:%S"),
                seconds=3600,
            ))
            client.command(DUPLICATE_EVENTS.format(raw=raw, since=since_text))
            if late_per_mille:
                client.command(LATE_EVENTS.format(raw=raw, since=since_text,
                                                  late_per_mille=late_per_mille))
            new = client.query(
                f"select count() from {raw}.events where received_at > '{since_text}'"
            ).first_row[0]
            late = f"{late_per_mille / 10:.1f} % of them late, up to 7 days old" \
                if late_per_mille else "none late"
            print(f"\nadded one more hour: {new:,} raw events ({late})")

        # Dagster's schedules: every 5 minutes all models but those tagged hourly, hourly those
        # (orchestration/schedules.py)
        # (--job-runs: one new hour before each run; the median, this machine being noisy)
        job_runs = []
        for run in range(1, args.job_runs + 1):
            add_hour(run, late_per_mille=0)
            job_runs.append(dbt("build", "--resource-type", "model",
                                "--exclude", f"tag:{HOURLY_TAG}"))
            if run == 1:
                report("the 5-minute job: dbt build of all models but those tagged hourly",
                       job_runs[0])
            else:
                keep_results(f"the 5-minute job, run {run}")
        frequent = statistics.median(job_runs)
        if args.job_runs > 1:
            print(f"\n== the 5-minute job, {args.job_runs} runs: "
                  f"{', '.join(f'{took:.1f}' for took in job_runs)} s; median {frequent:.1f} s")
        hourly = dbt("build", *JOB_BUILD_EXCLUDES, "--select", *HOURLY_SELECTION,
                     "resource_type:test")
        report("the hourly job: the models tagged hourly, the seeds and every data test", hourly)

        add_hour(args.job_runs + 1, late_per_mille=args.late_per_mille)
        incremental = dbt("run")
        report("incremental run of every model, with late events", incremental)
        tests = dbt("test")
        print(f"\n== dbt test after the incremental runs: {tests:.1f} s wall")
        print(f"\nsummary: full build {full:.1f} s (target <= 60 s); the 5-minute job after "
              f"one new hour {frequent:.1f} s{' (median)' if args.job_runs > 1 else ''} "
              f"(target <= 5 s), the hourly job {hourly:.1f} s; "
              f"every model after another hour, with late events, {incremental:.1f} s; dbt test "
              f"{tests:.1f} s")
        print_cpu(cpu_spent, total, f"{hour_sessions * EVENTS_PER_SESSION:,.0f} per added hour")
    finally:
        databases = (raw, *(f"{settings.analytics_database}{layer}"
                            for layer in ("", "_staging", "_intermediate")))
        if args.keep_databases and args.data_dir:
            print(f"\nkept databases: {', '.join(databases)}")
            databases = ()
        for database in databases:
            client.command(f"drop database if exists {database} sync")
        client.close()
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)


SOURCE = "bench_models_source"


def reuse_events(client, raw: str, events: int, days: int,
                 latest_end: datetime) -> datetime | None:
    """Attach the kept events of an earlier run with the same figures to ``raw``.events and
    return the end of their time span; None when there are none, or when they end after
    ``latest_end``."""
    exists = client.command(f"exists table {SOURCE}.kept")
    if not int(exists):
        return None
    rows = client.query(f"select end from {SOURCE}.kept where events = {{events:UInt64}} "
                        "and days = {days:UInt32}",
                        parameters={"events": events, "days": days}).result_rows
    if not rows or rows[0][0].replace(tzinfo=UTC) > latest_end:
        return None
    client.command(f"alter table {raw}.events attach partition all from {SOURCE}.events")
    return rows[0][0].replace(tzinfo=UTC)


def keep_events(client, raw: str, events: int, days: int, end: datetime) -> None:
    """Keep a copy of the generated events (hard-linked parts) for later runs."""
    client.command(f"drop database if exists {SOURCE} sync")
    client.command(f"create database {SOURCE}")
    client.command(f"create table {SOURCE}.events as {raw}.events")
    client.command(f"alter table {SOURCE}.events attach partition all from {raw}.events")
    client.command(f"create table {SOURCE}.kept (events UInt64, days UInt32, end DateTime('UTC'))"
                   " engine = MergeTree order by tuple()")
    client.command(f"insert into {SOURCE}.kept values ({events}, {days}, "
                   f"'{end.strftime('%Y-%m-%d %H:%M:%S')}')")


if __name__ == "__main__":
    main()

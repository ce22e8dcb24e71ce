"""Benchmark of the dashboards at scale: p95 of every overview query and each page's render time.

    .venv/bin/python bench/dashboard.py                 # 10 million events (generated once)
    .venv/bin/python bench/dashboard.py --events 1000000 --runs 10

Uses TRACKHOUSE_CLICKHOUSE_URL when set; otherwise starts its own embedded warehouse on a free
port with a data directory under --data-dir, which is kept so later runs reuse the events and
marts (delete it, or pass --regenerate, to start over). Events are generated inside ClickHouse
(INSERT ... SELECT from numbers()), marts built by the real dbt project (from scratch on new
events, otherwise an incremental `dbt build`, which also creates marts added since; after
changing a model's SQL pass --full-refresh; --skip-dbt leaves the marts as they are), pages
rendered by Streamlit's AppTest against a metadata database in the same folder. Every overview
query is timed without filters and under the filter sets of filter_sets() (a session- plus an
event-level filter, an event name, an event property); --only times the queries whose name
contains a text. --rollups also times each unfiltered session breakdown tile, which merges the
day rows of daily_session_states, against grouping the sessions mart as it did before
(docs/decisions/0045).

Targets (issue 17): every overview query p95 <= 100 ms, filtered and unfiltered, 7 and 30
days; every page cold <= 1 s. The figures are noisy on a shared machine: compare runs made
one after the other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # after ROOT: tests/warehouse/ must not shadow the package
from conftest import EmbeddedWarehouse  # noqa: E402  (the test suite's helpers)

sys.path.append(str(ROOT / "bench"))
from models import start_embedded_warehouse  # noqa: E402  (bench/models.py's helper)

PROJECT = "bench-shop"
TIMEZONE = "Europe/Berlin"
EMAIL, PASSWORD = "bench@trackhouse.local", "bench password 123"
QUERY_TARGET_MS, PAGE_TARGET_S = 100, 1.0


def filter_sets() -> dict[str, tuple]:
    """The filtered views timed: label -> filters."""
    from queries.filters import Filter, Op

    return {
        # a session-level and an event-level filter together (the sessions must match both)
        "country+path": (Filter("country", Op.IS, "DE"), Filter("path", Op.CONTAINS, "docs")),
        "event": (Filter("event", Op.IS, "signup"),),
        "property": (Filter("prop:plan", Op.IS, "pro"),),
    }


PAGES = ("overview", "realtime", "events", "funnels", "retention", "profiles", "admin")

# Events in sessions of four: a quarter of the sessions are split into single-event visits
# (bounces) by spreading their events hours apart. Attributes are per session, as a tracker
# would send them.
GENERATE_SQL = """
insert into {raw}.events (id, project_id, name, device_id, profile_id, created_at, received_at,
    path, referrer, referrer_name, referrer_type, utm_source, utm_medium, utm_campaign,
    country, region, city, browser, os, device, properties)
with
    intDiv(number, 4) as visit,
    number % 4 as step,
    cityHash64(visit, 'bounce') % 4 = 0 as scattered,
    now64(3) - toIntervalSecond(22200 + cityHash64(visit, 'time') % ({days} * 86400))
        + toIntervalSecond(if(scattered, step * 7200, step * 40)) as moment,
    ['/', '/pricing', '/docs', '/docs/install', '/docs/api', '/blog', '/blog/launch',
     '/blog/clickhouse', '/about', '/signup', '/login', '/features', '/changelog',
     '/careers', '/contact', '/integrations', '/customers', '/security', '/terms',
     '/privacy'] as paths,
    cityHash64(visit, 'source') % 6 as source,
    cityHash64(visit, 'geo') % 8 as geo,
    cityHash64(visit, 'ua') % 5 as ua
select
    generateUUIDv4(number),
    '{project}',
    if(step > 0 and cityHash64(number, 'custom') % 5 = 0,
       ['signup', 'purchase', 'download', 'play_video'][1 + cityHash64(number, 'n') % 4],
       'screen_view'),
    concat('device-', toString(cityHash64(visit, 'device') % {devices})),
    if(cityHash64(visit, 'device') % {devices} % 10 = 0,
       concat('user-', toString(cityHash64(visit, 'device') % {devices})), ''),
    moment,
    moment,
    paths[1 + cityHash64(number, 'path') % length(paths)],
    ['', 'https://www.google.com/', 'https://news.ycombinator.com/', 'https://t.co/x',
     '', 'https://duckduckgo.com/'][1 + source],
    ['', 'Google', 'Hacker News', 'Twitter', '', 'DuckDuckGo'][1 + source],
    ['', 'search', 'social', 'social', '', 'search'][1 + source],
    if(source = 4, 'newsletter', ''), if(source = 4, 'email', ''),
    if(source = 4, ['autumn', 'winter'][1 + cityHash64(visit, 'c') % 2], ''),
    ['DE', 'US', 'FR', 'GB', 'BR', 'IN', 'JP', 'NL'][1 + geo],
    ['Berlin', 'California', 'Île-de-France', 'England', 'São Paulo', 'Maharashtra', 'Tokyo',
     'North Holland'][1 + geo],
    ['Berlin', 'San Francisco', 'Paris', 'London', 'São Paulo', 'Mumbai', 'Tokyo',
     'Amsterdam'][1 + geo],
    ['Chrome', 'Safari', 'Firefox', 'Edge', 'Chrome'][1 + ua],
    ['Windows', 'iOS', 'Linux', 'Windows', 'Android'][1 + ua],
    ['desktop', 'mobile', 'desktop', 'desktop', 'mobile'][1 + ua],
    if(step > 0 and cityHash64(number, 'custom') % 5 = 0,
       map('plan', ['free', 'pro', 'team'][1 + cityHash64(number, 'plan') % 3]), map())
from numbers({events})
"""


def start_warehouse(data_dir: Path) -> EmbeddedWarehouse | None:
    """Start an embedded warehouse unless TRACKHOUSE_CLICKHOUSE_URL names one already."""
    if os.environ.get("TRACKHOUSE_CLICKHOUSE_URL"):
        return None
    return start_embedded_warehouse(data_dir, folder="clickhouse")


@contextmanager
def scratch_database(data_dir: Path, prefix: str) -> Iterator[tuple[object, str, str]]:
    """(client, analytics database, scratch database) on the warehouse this benchmark keeps in
    ``data_dir``: for the benchmarks that time other shapes of its tables side by side. The
    scratch database is dropped and the warehouse stopped afterwards."""
    os.environ["TRACKHOUSE_DATA_DIR"] = str(data_dir)
    embedded = start_warehouse(data_dir)
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    get_settings.cache_clear()
    client = warehouse()
    scratch = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        client.command(f"create database {scratch}")
        yield client, get_settings().analytics_database, scratch
    finally:
        client.command(f"drop database if exists {scratch}")
        if embedded is not None:
            embedded.stop()


def median_ms(client, sql: str, runs: int) -> float:
    """The median time of ``runs`` runs of ``sql``, after one untimed run (the parts' caches)."""
    client.query(sql)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.query(sql)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def prepare(events: int, regenerate: bool, skip_dbt: bool = False,
            full_refresh: bool = False) -> None:
    from accounts import service
    from accounts.db import session_scope, upgrade
    from lifecycle.project_mirror import sync_projects
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse
    from warehouse.migrate import migrate

    get_settings.cache_clear()
    settings = get_settings()
    migrate()
    client = warehouse()
    raw = settings.raw_database
    present = int(client.command(
        f"select count() from {raw}.events where project_id = '{PROJECT}'") or 0)
    upgrade()
    with session_scope() as session:
        if not service.list_users(session):
            service.create_project(session, name="Bench shop", domain="bench.example",
                                   timezone=TIMEZONE, project_id=PROJECT)
            service.create_user(session, email=EMAIL, password=PASSWORD, is_admin=True)
    sync_projects()
    if present != events or regenerate:
        client.command(f"alter table {raw}.events delete where project_id = '{PROJECT}'",
                       settings={"mutations_sync": 2})
        started = time.perf_counter()
        client.command(GENERATE_SQL.format(raw=raw, project=PROJECT, events=events, days=95,
                                           devices=max(events // 20, 1)),
                       settings={"max_insert_block_size": 1_000_000})
        client.command(f"optimize table {raw}.events final")
        print(f"generated {events:,} events in {time.perf_counter() - started:.1f} s")
    else:
        print(f"reusing {present:,} events of {PROJECT}")
    fresh = present != events or regenerate
    if fresh or full_refresh or not skip_dbt:
        build_marts(full_refresh=fresh or full_refresh)


def build_marts(full_refresh: bool) -> None:
    """Build the marts: all of them from scratch on fresh events; otherwise an incremental
    ``dbt build``, which creates any mart missing from the kept data directory (a model added
    since it was generated) and brings the others up to date (quick: no new events)."""
    from trackhouse.dbt import run_dbt

    started = time.perf_counter()
    args = ["build", "--quiet"] + (["--full-refresh"] if full_refresh else [])
    result = run_dbt(args)
    if not result.success:
        failed = [f"{r.node.name}: {r.message}" for r in (result.result or [])
                  if str(r.status) in ("error", "fail")]
        raise SystemExit(f"dbt build failed: {result.exception or failed}")
    kind = "from scratch" if full_refresh else "incrementally"
    print(f"built the marts {kind} in {time.perf_counter() - started:.1f} s")


def server_cpu_ms(pid: int | None) -> float:
    """CPU time (user + system) the warehouse process has used so far; 0 when unknown."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18] if len(samples) > 1 \
        else samples[0]


def overview_cases(preset) -> list[tuple[str, Callable[[], object]]]:
    """(name, uncached call) of every query behind the overview for one date preset: without
    filters, and under each of filter_sets() (an event-level filter makes the session figures
    and breakdowns test the sessions' contents arrays; the other queries read events_current
    under filters)."""
    from queries import overview as q
    from queries.periods import Granularity, preset_range

    current = preset_range(preset, TIMEZONE)

    def queries(filters, label: str, dimensions) -> list[tuple[str, Callable[[], object]]]:
        suffix = f" [{label}]" if label else ""
        cases: list[tuple[str, Callable[[], object]]] = [
            (f"event_totals (both periods){suffix}", partial(
                q.event_totals.__wrapped__, PROJECT, current, filters)),
            (f"event_series by day (both periods){suffix}", partial(
                q.event_series.__wrapped__, PROJECT, current, Granularity.DAY, filters)),
            (f"session_figures (both periods){suffix}", partial(
                q.session_figures.__wrapped__, PROJECT, current, filters)),
            (f"top_pages{suffix}", partial(q.top_pages.__wrapped__, PROJECT, current, filters)),
        ]
        for dimension in dimensions:
            limit = 250 if dimension == "country" else 10
            cases.append((f"breakdown {dimension}{suffix}", partial(
                q.session_breakdown.__wrapped__, PROJECT, current, dimension, filters, limit)))
        return cases

    cases = queries((), "", q.SESSION_DIMENSIONS)
    for number, (label, filters) in enumerate(filter_sets().items()):
        # every breakdown under the first filter set; the slowest ones under the others
        dimensions = q.SESSION_DIMENSIONS if number == 0 else ("city", "browser")
        cases += queries(filters, label, dimensions)
    return cases


def time_queries(runs: int, pid: int | None,
                 only: str = "") -> Iterator[tuple[str, float, float, float]]:
    """(name, median ms, p95 ms, warehouse CPU ms per run) of every query behind the
    overview, uncached, each as soon as it is timed. CPU time does not depend on what else
    the machine is doing."""
    from queries.periods import Preset

    for preset in (Preset.LAST_7_DAYS, Preset.LAST_30_DAYS):
        for name, call in overview_cases(preset):
            name = f"{preset.value:>3} {name}"
            if only not in name:
                continue
            samples, cpu = timed(call, runs, pid)
            yield name, statistics.median(samples), p95(samples), cpu


def timed(call: Callable[[], object], runs: int, pid: int | None) -> tuple[list[float], float]:
    """(ms of each of ``runs`` calls, warehouse CPU ms per call), after one warm-up call
    that fills the server's caches of the parts."""
    call()
    samples = []
    cpu_before = server_cpu_ms(pid)
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, (server_cpu_ms(pid) - cpu_before) / runs


def time_pages(runs: int, date_range: str, pages: tuple[str, ...] = PAGES,
               filters: tuple[str, ...] = ()) -> list[tuple[str, float, float]]:
    """(page, cold s, warm s): render time in AppTest with empty and with filled query caches,
    for the view ``?range=<date_range>`` (and ``&f=<filter>`` for each of ``filters``)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params = {"project": PROJECT, "range": date_range,
                       **({"f": list(filters)} if filters else {})}
    at.run()
    at.text_input(key="login.email").input(EMAIL)
    at.text_input(key="login.password").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception, at.exception
    results = []
    for page in pages:
        cold, warm = [], []
        for _ in range(runs):
            st.cache_data.clear()
            started = time.perf_counter()
            at.switch_page(f"app_pages/{page}.py").run()
            cold.append(time.perf_counter() - started)
            assert not at.exception, [e.value for e in at.exception]
            started = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - started)
        results.append((page, statistics.median(cold), statistics.median(warm)))
    return results


def time_rollups(runs: int, pid: int | None) -> None:
    """Each unfiltered breakdown tile as the overview reads it, from daily_session_states'
    day rows, against grouping the sessions mart (what it read before docs/decisions/0045; a
    filter every session meets takes that path): p95 and warehouse CPU per run of both."""
    from queries import overview as q
    from queries.filters import Filter, Op
    from queries.periods import Preset, preset_range

    every_session = (Filter("country", Op.IS_NOT, "no such country"),)
    print(f"\nbreakdown tiles: daily_session_states against the sessions mart ({runs} runs each)")
    print(f"{'tile':<28} {'rollup p95':>10} {'CPU ms':>7} {'sessions p95':>12} {'CPU ms':>7}")
    for dimension in q.SESSION_DIMENSIONS:
        for preset in (Preset.LAST_7_DAYS, Preset.LAST_30_DAYS):
            current = preset_range(preset, TIMEZONE)
            figures = []
            for filters in ((), every_session):
                samples, cpu = timed(partial(q.session_breakdown.__wrapped__, PROJECT, current,
                                             dimension, filters, 10), runs, pid)
                figures += [p95(samples), cpu]
            print(f"{preset.value:>3} {dimension:<24} {figures[0]:>10.1f} {figures[1]:>7.0f} "
                  f"{figures[2]:>12.1f} {figures[3]:>7.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per query")
    parser.add_argument("--page-runs", type=int, default=3, help="timed renders per page")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/trackhouse-bench-dashboard"))
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--skip-dbt", action="store_true",
                        help="reuse the kept marts as they are (no incremental dbt build)")
    parser.add_argument("--full-refresh", action="store_true",
                        help="rebuild every mart from the kept events (after changing a model)")
    parser.add_argument("--only", default="",
                        help="time only the queries whose name contains this text")
    parser.add_argument("--rollups", action="store_true",
                        help="also time the unfiltered breakdown tiles against the sessions mart")
    parser.add_argument("--no-pages", action="store_true", help="skip the page renders")
    parser.add_argument("--warehouse-pid", type=int, default=None,
                        help="pid of an external embedded warehouse, to report its CPU time")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a ClickHouse setting for the timed queries, e.g. "
                             "optimize_use_projections=0 to time them without the projections "
                             "on the same data (repeatable)")
    args = parser.parse_args()
    from streamlit.logger import set_log_level

    set_log_level("error")  # AppTest and bare-mode caching warnings would bury the figures
    args.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TRACKHOUSE_DATA_DIR"] = str(args.data_dir)
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    embedded = start_warehouse(args.data_dir)
    try:
        prepare(args.events, args.regenerate, args.skip_dbt, args.full_refresh)
        if args.setting:
            from queries.base import client

            for name, value in (item.split("=", 1) for item in args.setting):
                client().set_client_setting(name, value)
            print(f"query settings: {', '.join(args.setting)}")
        print(f"\noverview queries ({args.runs} runs each, uncached; target p95 <= "
              f"{QUERY_TARGET_MS} ms)")
        pid = (embedded.process.pid if embedded is not None and embedded.process is not None
               else args.warehouse_pid)
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'query':<56} {'median ms':>10} {'p95 ms':>8} {'server CPU ms':>14}")
        worst, timed, over = 0.0, 0, 0
        for name, median, high, cpu in time_queries(args.runs, pid, args.only):
            worst = max(worst, high)
            timed, over = timed + 1, over + (high > QUERY_TARGET_MS)
            print(f"{name:<56} {median:>10.1f} {high:>8.1f} {cpu:>14.0f}"
                  f"{'' if high <= QUERY_TARGET_MS else '  OVER TARGET'}", flush=True)
        if args.rollups:
            time_rollups(args.runs, pid)
        if args.no_pages:
            print(f"\n{over} of {timed} queries over {QUERY_TARGET_MS} ms p95; "
                  f"worst query p95 {worst:.0f} ms")
            return
        print(f"\npages (AppTest, median of {args.page_runs}; cold = query caches emptied; "
              f"target <= {PAGE_TARGET_S} s)")
        print(f"{'page':<28} {'cold s':>8} {'warm s':>8}")
        slowest = 0.0
        timings = [(f"{page} (7d)", cold, warm) for page, cold, warm in
                   time_pages(args.page_runs, "7d")]
        timings += [(f"{page} (30d)", cold, warm) for page, cold, warm in
                    time_pages(args.page_runs, "30d", ("overview", "events"))]
        # a session- and an event-level filter: the overview and retention under filters
        timings += [(f"{page} (30d, filtered)", cold, warm) for page, cold, warm in
                    time_pages(args.page_runs, "30d", ("overview", "retention"),
                               ("country|is|DE", "path|contains|docs"))]
        for page, cold, warm in timings:
            slowest = max(slowest, cold)
            print(f"{page:<28} {cold:>8.2f} {warm:>8.2f}"
                  f"{'' if cold <= PAGE_TARGET_S else '  OVER TARGET'}")
        print(f"\n{over} of {timed} queries over {QUERY_TARGET_MS} ms p95; worst query p95 "
              f"{worst:.0f} ms; slowest cold page {slowest:.2f} s; load average "
              f"{os.getloadavg()[0]:.1f} at the end")
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main()

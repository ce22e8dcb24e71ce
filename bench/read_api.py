"""Benchmark of the read API at scale: p95 of each Plausible query and OpenPanel export through
the collector app (in-process ASGI, real Redis for auth and rate-limit state, real warehouse).

    .venv/bin/python bench/read_api.py                 # 10 million events (generated once)
    .venv/bin/python bench/read_api.py --events 1000000 --runs 10

The events, marts and embedded warehouse are bench/dashboard.py's (same --data-dir, default
/tmp/trackhouse-bench-dashboard; see its docstring): the two benchmarks share one data set.
Target (issue 18): p95 <= 100 ms for the KPI and breakdown queries. The figures are noisy on a
shared machine: compare runs made one after the other, and read the load average printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))
sys.path.append(str(ROOT / "tests"))
import dashboard  # noqa: E402  (its data set, warehouse and timing helpers)
from conftest import start_redis  # noqa: E402  (the test suite's private Redis)

TARGET_MS = 100
METRICS = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
           "visit_duration"]


def cases(site: str) -> list[tuple[str, str, str, dict]]:
    """(name, method, path, body or params) of every request timed."""
    found: list[tuple[str, str, str, dict]] = []
    for date_range in ("7d", "30d"):
        def q(name: str, kind: str, date_range: str = date_range, **extra: object) -> None:
            body = {"site_id": site, "metrics": METRICS, "date_range": date_range, **extra}
            found.append((f"{date_range:>3} {kind:<9} {name}", "POST", "/api/v2/query", body))

        q("all metrics", "KPI")
        q("all metrics [country+page]", "KPI", filters=[["is", "visit:country", ["DE"]],
                                                        ["contains", "event:page", ["docs"]]])
        q("all metrics [event property]", "KPI", filters=[["is", "event:props:plan", ["pro"]]])
        for dimension in ("visit:source", "visit:country", "visit:device", "visit:browser",
                          "visit:os", "visit:utm_campaign"):
            q(dimension, "breakdown", dimensions=[dimension], pagination={"limit": 10})
        found.append((f"{date_range:>3} breakdown visit:source [country+page]", "POST",
                      "/api/v2/query", {
                          "site_id": site, "date_range": date_range,
                          "metrics": ["visitors", "visits", "bounce_rate", "visit_duration"],
                          "dimensions": ["visit:source"], "pagination": {"limit": 10},
                          "filters": [["is", "visit:country", ["DE"]],
                                      ["contains", "event:page", ["docs"]]]}))
        body = {"site_id": site, "metrics": ["visitors", "pageviews"],
                "date_range": date_range}
        found.append((f"{date_range:>3} breakdown event:page", "POST", "/api/v2/query",
                      {**body, "dimensions": ["event:page"], "pagination": {"limit": 10}}))
        found.append((f"{date_range:>3} breakdown event:page [country]", "POST",
                      "/api/v2/query", {**body, "dimensions": ["event:page"],
                                        "filters": [["is", "visit:country", ["DE"]]]}))
        found.append((f"{date_range:>3} breakdown event:name", "POST", "/api/v2/query",
                      {**body, "metrics": ["visitors", "events"],
                       "dimensions": ["event:name"]}))
        q("time:day", "series", dimensions=["time:day"])
        found.append((f"{date_range:>3} export    events page 1 (50)", "GET",
                      "/export/events", {"range": date_range}))
        found.append((f"{date_range:>3} export    charts signup by day", "GET",
                      "/export/charts", {"series": '[{"name":"signup","segment":"user"}]',
                                         "range": date_range}))
    found.append(("  1d series   time:hour", "POST", "/api/v2/query",
                  {"site_id": site, "metrics": METRICS, "date_range": "day",
                   "dimensions": ["time:hour"]}))
    return found


def dashboard_cases() -> list[tuple[str, Callable[[], object]]]:
    """The overview's queries behind the API's KPI and source breakdown (uncached)."""
    from queries import overview as q
    from queries.filters import Filter, Op
    from queries.periods import Preset, preset_range

    found: list[tuple[str, Callable[[], object]]] = []
    filters = (Filter("country", Op.IS, "DE"), Filter("path", Op.CONTAINS, "docs"))
    for preset in (Preset.LAST_7_DAYS, Preset.LAST_30_DAYS):
        span = preset_range(preset, dashboard.TIMEZONE)

        def kpis(span: object = span, filters: tuple = ()) -> None:
            q.event_totals.__wrapped__(dashboard.PROJECT, span, filters)  # type: ignore[attr-defined]
            q.session_figures.__wrapped__(dashboard.PROJECT, span, filters)  # type: ignore[attr-defined]

        found.append((f"{preset.value:>3} KPI       event_totals + session_figures", kpis))
        found.append((f"{preset.value:>3} KPI       the same [country+page]",
                      partial(kpis, span, filters)))
        found.append((f"{preset.value:>3} breakdown session_breakdown referrer_name",
                      partial(q.session_breakdown.__wrapped__,  # type: ignore[attr-defined]
                              dashboard.PROJECT, span,
                              "referrer_name", (), 10)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per request")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/trackhouse-bench-dashboard"))
    parser.add_argument("--skip-dbt", action="store_true",
                        help="reuse the kept marts as they are (no incremental dbt build)")
    parser.add_argument("--only", default="", help="time only requests whose name has this")
    args = parser.parse_args()
    from streamlit.logger import set_log_level

    set_log_level("error")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TRACKHOUSE_DATA_DIR"] = str(args.data_dir)
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    embedded = dashboard.start_warehouse(args.data_dir)
    redis = start_redis(Path(tempfile.mkdtemp(prefix="bench-read-api-redis-")))
    os.environ["TRACKHOUSE_REDIS_URL"] = redis.url
    try:
        import warehouse.client as warehouse_client

        plain = warehouse_client.warehouse

        def patient(*a: Any, **kw: Any) -> Any:
            # generating 10 M events on a busy machine outlasts the default 300 s read timeout
            kw.setdefault("send_receive_timeout", 3_600)
            return plain(*a, **kw)

        warehouse_client.warehouse = patient
        dashboard.prepare(args.events, regenerate=False, skip_dbt=args.skip_dbt)
        warehouse_client.warehouse = plain
        from fastapi.testclient import TestClient

        from accounts import service
        from accounts.db import session_scope
        from collector.main import create_app
        from trackhouse.settings import Settings, get_settings

        get_settings.cache_clear()
        with session_scope() as session:
            client, secret = service.create_client(session, project_id=dashboard.PROJECT,
                                                   type="read", name="bench read API")
            client_id = client.id
        headers = {"openpanel-client-id": client_id, "openpanel-client-secret": secret or ""}
        pid = embedded.process.pid if embedded is not None and embedded.process else None
        settings = Settings(read_api_rate_limit="")  # the benchmark's own requests: no limit
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as api:
            print(f"\nread API ({args.runs} runs each, through the app; target p95 <= "
                  f"{TARGET_MS} ms for KPI and breakdown)")
            print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            print(f"{'request':<50} {'median ms':>10} {'p95 ms':>8} {'server CPU ms':>14}")
            worst = 0.0
            for name, method, path, payload in cases(dashboard.PROJECT):
                if args.only not in name:
                    continue

                def call(method=method, path=path, payload=payload, name=name) -> None:
                    answer = (api.post(path, json=payload, headers=headers) if method == "POST"
                              else api.get(path, params=payload, headers=headers))
                    if answer.status_code != 200:
                        raise SystemExit(f"{name}: {answer.status_code} {answer.text[:300]}")

                samples, cpu = dashboard.timed(call, args.runs, pid)
                high = dashboard.p95(samples)
                targeted = "KPI" in name or "breakdown" in name
                if targeted:
                    worst = max(worst, high)
                flag = "  OVER TARGET" if targeted and high > TARGET_MS else ""
                print(f"{name:<50} {statistics.median(samples):>10.1f} {high:>8.1f} "
                      f"{cpu:>14.0f}{flag}", flush=True)
            print(f"\nworst KPI/breakdown p95 {worst:.0f} ms; load average at end: "
                  f"{os.getloadavg()[0]:.1f}")
            print("\nthe dashboards' own query functions for the same figures (same run, "
                  "no HTTP, no auth):")
            for name, direct in dashboard_cases():
                if args.only not in name:
                    continue
                samples, cpu = dashboard.timed(direct, args.runs, pid)
                print(f"{name:<50} {statistics.median(samples):>10.1f} "
                      f"{dashboard.p95(samples):>8.1f} {cpu:>14.0f}", flush=True)
        with session_scope() as session:
            service.revoke_client(session, client_id)
    finally:
        redis.process.terminate()
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main()

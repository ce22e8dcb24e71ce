"""Cost of alert evaluation and of e-mail reports.

    .venv/bin/python bench/alerts.py [--rules 200] [--reports 10]

Starts its own embedded warehouse (unless TRACKHOUSE_CLICKHOUSE_URL is set) and metadata
database in a temporary folder, loads the dashboard tests' fixture events (two projects, ~550
events; tests/app/dashboard_fixture.py), builds the marts with the real dbt project, starts a
local webhook receiver and a local SMTP server (aiosmtpd), then measures in one run:
- one evaluation of --rules rules (a mix of every metric, windows and conditions), the first
  firing and notifying each rule (webhook + e-mail), then a quiet re-evaluation (no incident
  changes: the sensor's steady state);
- the chart PNG alone (matplotlib, Agg);
- --reports weekly reports (queries, chart, MIME, SMTP delivery), forced.
Absolute times are noisy on a shared machine; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # after ROOT: tests/warehouse/ must not shadow the package
sys.path.append(str(ROOT / "tests" / "app"))
from conftest import EmbeddedWarehouse, free_port  # noqa: E402  (the test suite's helpers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--reports", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="trackhouse-bench-alerts-"))
    os.environ["TRACKHOUSE_DATA_DIR"] = str(folder)
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    with ExitStack() as stack:
        if not os.environ.get("TRACKHOUSE_CLICKHOUSE_URL"):
            embedded = EmbeddedWarehouse(host="127.0.0.1", port=free_port(),
                                         data_dir=folder / "clickhouse",
                                         log_path=folder / "warehouse.log", env={**os.environ})
            embedded.start()
            stack.callback(embedded.stop)
            os.environ["TRACKHOUSE_CLICKHOUSE_URL"] = embedded.url
            os.environ["TRACKHOUSE_CLICKHOUSE_PASSWORD"] = embedded.password
        run(args, stack)


def run(args: argparse.Namespace, stack: ExitStack) -> None:
    import dashboard_fixture as fd
    import pytest
    from alerts_support import smtp_server, webhook_receiver

    from accounts.db import session_scope, upgrade
    from accounts.models import Project
    from trackhouse.dbt import run_dbt
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse
    from warehouse.migrate import migrate

    monkeypatch = pytest.MonkeyPatch()
    stack.callback(monkeypatch.undo)
    inbox = stack.enter_context(smtp_server(monkeypatch))
    hook = stack.enter_context(webhook_receiver())
    get_settings.cache_clear()
    migrate()
    upgrade()
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(microsecond=0)
    events = fd.generate(now)
    client = warehouse()
    client.insert(f"{get_settings().raw_database}.events", fd.rows(events),
                  column_names=fd.COLUMNS)
    with session_scope() as session:
        for project_id, tz in fd.PROJECT_ZONES.items():
            session.add(Project(id=project_id, name=project_id, timezone=tz))
    started = time.perf_counter()
    result = run_dbt(["build"])
    print(f"setup: {len(events)} events, dbt build {time.perf_counter() - started:.1f} s "
          f"({'ok' if result.success else 'FAILED'})")

    from alerts.evaluate import evaluate_rules
    from alerts.reports import Period, chart_png, gather, last_period, send_due_reports
    from alerts.rules import create_rule, subscribe

    kinds = [  # metric, target, condition, threshold, window
        ("visitors", "", "drop", 10, "day"), ("pageviews", "", "rise", 10, "day"),
        ("visitors", "", "above", 0, "hour"), ("event_count", "signup", "above", 0, "day"),
        ("funnel_conversion", "checkout", "below", 0.5, "day"),
        ("pipeline_stale", "", "above", 0, "day"),
    ]
    with session_scope() as session:
        for number in range(args.rules):
            metric, target, condition, threshold, window = kinds[number % len(kinds)]
            create_rule(session, project_id=list(fd.PROJECT_ZONES)[number % 2], metric=metric,
                        target=target, condition=condition, threshold=threshold, window=window,
                        webhook_url=hook.url, emails=["ops@bench.test"])
    timings = {}
    for label in ("first evaluation (fires + notifies)", "re-evaluation (steady state)"):
        started = time.perf_counter()
        summary = evaluate_rules()
        elapsed = time.perf_counter() - started
        timings[label] = elapsed
        print(f"{label}: {args.rules} rules in {elapsed:.2f} s = "
              f"{elapsed / args.rules * 1000:.1f} ms/rule; fired {len(summary.fired)}, "
              f"sent {summary.sent}, failed {summary.failed}, errors {len(summary.errors)}")
    print(f"  received: {len(hook.received)} webhooks, {len(inbox.messages)} e-mails")

    period: Period = last_period("weekly", fd.PROJECT_ZONES[fd.SHOP], now)
    report = gather(fd.SHOP, "shop", period)
    charts = []
    for _ in range(10):
        started = time.perf_counter()
        chart_png(report)
        charts.append(time.perf_counter() - started)
    print(f"chart PNG: median {statistics.median(charts) * 1000:.0f} ms "
          f"(10 renders, first {charts[0] * 1000:.0f} ms)")
    with session_scope() as session:
        for number in range(args.reports):
            subscribe(session, project_id=fd.SHOP, email=f"reader{number}@bench.test")
    before = len(inbox.messages)
    started = time.perf_counter()
    sent = send_due_reports(now, force=True)
    elapsed = time.perf_counter() - started
    print(f"reports: {len(sent.sent)} sent in {elapsed:.2f} s = "
          f"{elapsed / max(1, len(sent.sent)) * 1000:.0f} ms/report (queries cached after the "
          f"first: same project and period); received {len(inbox.messages) - before}; "
          f"failed {len(sent.failed)}")


if __name__ == "__main__":
    main()

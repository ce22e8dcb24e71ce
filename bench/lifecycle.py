"""Benchmark of the data-lifecycle commands on a large warehouse: erase one profile, back up,
restore. Prints the wall times, and backup time and size per million events.

    .venv/bin/python bench/lifecycle.py [--events 10000000] [--days 30]

The events are bench/models.py's (generated inside ClickHouse), the marts a full dbt run over
them. The erased profile is the one with the most events. The benchmark starts its own embedded
warehouse on a free port with a temporary data directory, or uses TRACKHOUSE_CLICKHOUSE_URL when
set (with private databases). The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))
sys.path.append(str(ROOT / "tests"))  # after ROOT: tests/warehouse/ must not shadow the package
from models import (  # noqa: E402
    DUPLICATE_EVENTS,
    EVENTS_PER_SESSION,
    GENERATE_EVENTS,
    scratch_databases,
    start_embedded_warehouse,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--backup-only", action="store_true",
                        help="skip the dbt build and the erasure: time backup and restore only")
    args = parser.parse_args()

    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    workdir = Path(tempfile.mkdtemp(prefix="trackhouse-bench-lifecycle-"))
    os.environ["TRACKHOUSE_DATA_DIR"] = str(workdir / "data")
    embedded = None
    if not os.environ.get("TRACKHOUSE_CLICKHOUSE_URL"):
        embedded = start_embedded_warehouse(workdir)

    from lifecycle.backup import backup, restore
    from lifecycle.privacy import Subject, erase
    from trackhouse.dbt import run_dbt
    from warehouse.migrate import migrate

    settings, client = scratch_databases(send_receive_timeout=3600)
    raw = settings.raw_database
    target = workdir / "target"

    def dbt(*dbt_args: str) -> None:
        result = run_dbt([*dbt_args, "--target-path", str(target), "--quiet"], settings)
        if not result.success:
            raise SystemExit(f"dbt {' '.join(dbt_args)} failed: {result.exception or ''}")

    def timed(title: str, action):  # noqa: ANN001, ANN202
        started = time.perf_counter()
        value = action()
        took = time.perf_counter() - started
        print(f"{title}: {took:.1f} s", flush=True)
        return value, took

    def erase_busiest_profile() -> None:
        timed("seed + full dbt run", lambda: (dbt("seed"), dbt("run")))
        project, profile, events = client.query(
            f"select project_id, profile_id, count() as n from {raw}.events "
            "where profile_id != '' group by project_id, profile_id order by n desc limit 1"
        ).first_row
        erasure, _ = timed(f"erase profile {profile} ({events} raw events)", lambda: erase(
            Subject(project, "profile", profile), settings=settings, client=client,
            dbt=lambda a: dbt(*a)))
        print(f"  deleted {erasure.rows:,} rows in {len(erasure.deleted)} tables; "
              f"recomputed {erasure.recomputed}")

    fresh_databases: list[str] = []
    try:
        migrate(client, settings)
        client.command(
            f"insert into {raw}.projects (id, name, domain, timezone, created_at, updated_at) "
            "values ('demo-shop', 'Shop', '', 'UTC', now64(3), now64(3)), "
            "('demo-blog', 'Blog', '', 'Europe/Berlin', now64(3), now64(3)), "
            "('demo-app', 'App', '', 'America/New_York', now64(3), now64(3))")
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        sessions = int(args.events / EVENTS_PER_SESSION / 1.01)
        timed("generate events", lambda: (client.command(GENERATE_EVENTS.format(
            raw=raw, first_session=0, sessions=sessions, devices=max(sessions // 2, 1),
            end=end.strftime("%Y-%m-%d %H:%M:%S"), seconds=args.days * 86400)),
            client.command(DUPLICATE_EVENTS.format(raw=raw, since="1970-01-01 00:00:00"))))
        total = int(client.query(f"select count() from {raw}.events").first_row[0])
        print(f"raw events: {total:,}")
        if not args.backup_only:
            erase_busiest_profile()

        backup_dir = workdir / "backup"
        manifest, backup_s = timed("backup", lambda: backup(
            backup_dir, settings=settings, client=client, progress=lambda m: None))
        size = manifest["bytes"]
        millions = total / 1e6
        print(f"  {size / 1e6:,.1f} MB; per million raw events: {backup_s / millions:.2f} s, "
              f"{size / 1e6 / millions:.1f} MB")
        fresh = settings.model_copy(update={
            "raw_database": f"{raw}_r", "analytics_database": f"{settings.analytics_database}_r",
            "data_dir": workdir / "fresh"})
        fresh_databases = [fresh.raw_database, *(f"{fresh.analytics_database}{layer}" for layer
                                                 in ("", "_staging", "_intermediate"))]
        _, restore_s = timed("restore", lambda: restore(
            backup_dir, settings=fresh, client=client, progress=lambda m: None))
        print(f"  per million raw events: {restore_s / millions:.2f} s")
    finally:
        for database in [raw, *(f"{settings.analytics_database}{layer}" for layer
                                in ("", "_staging", "_intermediate")), *fresh_databases]:
            client.command(f"drop database if exists {database} sync")
        client.close()
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""History imports spanning years land whole: a batch whose rows fall in more monthly
partitions than ClickHouse's default per-insert limit (100) is stored, not dropped or retried
forever, and nothing lands twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from collector_support import ORIGIN, TestProject, start_worker, wait_until


def monthly_events(tag: str, first_year: int, months: int) -> list[dict]:
    """One event on the 15th of each month from January of ``first_year``."""
    return [{"type": "track", "payload": {"name": "imported", "properties": {
        "__eventId": f"{tag}-{n}", "__path": f"{ORIGIN}/{tag}",
        "__timestamp": f"{first_year + n // 12}-{n % 12 + 1:02d}-15T12:00:00Z"}}}
        for n in range(months)]


def landed(ch: Any, database: str, project_id: str) -> dict[str, tuple[int, int, int]]:
    """Per path: rows, distinct ids, distinct months."""
    rows = ch.query(
        "select path, count(), uniqExact(id), uniqExact(toYYYYMM(created_at)) "
        f"from {database}.events where project_id = {{p:String}} group by path",
        parameters={"p": project_id}).result_rows
    return {path: (int(n), int(ids), int(months)) for path, n, ids, months in rows}


@pytest.fixture
def history_database(migrated: None, tmp_path: Path) -> Iterator[str]:
    """A raw database of its own, with a worker landing into it: the session's later dbt
    builds (models, orchestration, dashboards) would otherwise rebuild hundreds of months of
    this history, and dropping a database is instant where deleting rows is not."""
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse
    from warehouse.migrate import migrate

    settings = get_settings().model_copy(
        update={"raw_database": f"history_{uuid.uuid4().hex[:8]}"})
    migrate(settings=settings)
    worker = start_worker(tmp_path / "worker.log", TRACKHOUSE_RAW_DATABASE=settings.raw_database)
    try:
        yield settings.raw_database
    finally:
        worker.stop()
        warehouse(settings).command(f"drop database if exists {settings.raw_database} sync")


def test_a_101_month_import_lands_whole(api: Any, history_database: str,
                                        fresh_project: TestProject, ch: Any) -> None:
    answer = api.post("/track/batch?import=true", json=monthly_events("decade", 2000, 101),
                      headers=fresh_project.server_headers())
    assert answer.status_code == 200 and answer.json()["accepted"] == 101, answer.text
    expected = {"/decade": (101, 101, 101)}
    project = fresh_project.project_id
    wait_until(lambda: landed(ch, history_database, project) == expected, timeout_s=60,
               message="the 101 months landed")


def test_concurrent_long_imports_and_a_live_event_land_once(
    api: Any, history_database: str, fresh_project: TestProject, ch: Any,
) -> None:
    """Two 120-month imports sent at once (the worker may merge them into one batch of 240
    months) and a live event in between."""
    headers = fresh_project.server_headers()

    def post(items: list[dict]) -> int:
        answer = api.post("/track/batch?import=true", json=items, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()["accepted"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        imports = pool.map(post, [monthly_events("first", 2000, 120),
                                  monthly_events("second", 2010, 120)])
        live = api.post("/track", json={"type": "track", "payload": {
            "name": "screen_view", "properties": {"__path": f"{ORIGIN}/live"}}},
            headers=fresh_project.browser_headers())
        assert list(imports) == [120, 120]
    assert live.status_code == 200, live.text
    expected = {"/first": (120, 120, 120), "/second": (120, 120, 120),
                "/live": (1, 1, 1)}
    project = fresh_project.project_id
    wait_until(lambda: landed(ch, history_database, project) == expected, timeout_s=60,
               message="both imports and the live event landed")
    # sent again (an SDK retrying after a lost answer): every id is a duplicate
    assert post(monthly_events("first", 2000, 120)) == 0


def test_the_partition_bounds_cover_the_accepted_range() -> None:
    from datetime import date

    from trackhouse.event_times import months_in_range, weeks_in_range

    # 2000-01 .. 2027-01 (an event of 2026-12-31 stamped a day ahead): 325 months
    assert months_in_range(date(2026, 12, 6)) == 325
    assert months_in_range(date(2000, 1, 1)) == 2
    # the Mondays from 1999-12-27 (2000-01-01's week) to 2026-12-07 (a day ahead): 1407
    assert weeks_in_range(date(2026, 12, 6)) == 1407

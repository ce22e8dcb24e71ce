"""``trackhouse demo`` against a real collector process, landed by a real worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from collector_support import root_fixtures, wait_until

from trackhouse.settings import PROJECT_ROOT, get_settings

ROOT = root_fixtures()


def test_demo_traffic_lands_in_three_projects(redis_server, migrated, worker, ch,
                                              tmp_path: Path) -> None:
    from demo.traffic import run_demo

    port = ROOT.free_port()
    log = (tmp_path / "collector.log").open("ab")
    collector = subprocess.Popen(
        [str(Path(sys.executable).parent / "trackhouse"), "collector", "--port", str(port)],
        env={**os.environ}, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        ROOT.wait_for_http(f"http://127.0.0.1:{port}/health", 30, collector)
        url = f"http://127.0.0.1:{port}"
        counts = run_demo(url=url, devices=40, days=10, seed=3, settings=get_settings())
        assert counts["accepted"] > 300 and counts["error"] == 0
        again = run_demo(url=url, devices=40, days=10, seed=3, settings=get_settings())
        # the same history: every imported message is a duplicate the second time (the recent
        # live messages go to /track, whose answer does not say; the ids below do)
        assert counts["duplicate"] == 0 and counts["live"] > 0
        assert again["duplicate"] == counts["accepted"] - counts["live"]
        assert again["live"] >= counts["live"] and again["error"] == 0
    finally:
        collector.terminate()
        collector.wait(20)

    def landed() -> int:
        return int(ch.query("select count() from trackhouse.events where project_id like "
                            "'demo-%'").result_rows[0][0])

    wait_until(lambda: landed() >= counts["accepted"] * 0.8, timeout_s=60, message="demo landed")
    # sent twice, stored once: no id landed twice (the collector's dedup, not merges)
    assert ch.query("select count() - uniqExact(id) from trackhouse.events "
                    "where project_id like 'demo-%'").result_rows[0][0] == 0
    per_project = dict(ch.query(
        "select project_id, uniqExact(device_id) from trackhouse.events "
        "where project_id like 'demo-%' group by project_id").result_rows)
    assert set(per_project) == {"demo-shop", "demo-blog", "demo-app"}
    assert all(devices >= 20 for devices in per_project.values())
    names = {row[0] for row in ch.query(
        "select distinct name from trackhouse.events where project_id like 'demo-%'").result_rows}
    assert {"screen_view", "signup_started", "signup_completed"} <= names
    imported = ch.query("select countIf(imported_at is not null), countIf(is_bot), "
                        "uniqExact(country), uniqExact(toDate(created_at)) "
                        "from trackhouse.events where project_id like 'demo-%'").result_rows[0]
    assert imported[0] > 0 and imported[2] >= 5 and imported[3] >= 5
    timezones = dict(ch.query("select id, timezone from trackhouse.projects final "
                              "where id like 'demo-%'").result_rows)
    assert timezones == {"demo-shop": "UTC", "demo-blog": "Europe/Berlin",
                         "demo-app": "America/New_York"}

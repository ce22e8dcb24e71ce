"""``trackhouse import ga4|openpanel``: generated exports in the tools' real file formats,
through a real collector and worker into a raw database of this module's own."""

from __future__ import annotations

from pathlib import Path

import orjson
from export_data import (
    ga4_rows,
    openpanel_profiles,
    openpanel_rows,
    write_ga4_ndjson,
    write_ga4_parquet,
    write_openpanel,
)
from importers_support import Landing, checkpoint, wait_until


def test_ga4_ndjson_import_rerun_and_parquet_of_the_same_rows(
        landing: Landing, project: str, tmp_path: Path) -> None:
    rows, collector_refused, importer_refused = ga4_rows(150)
    ndjson = write_ga4_ndjson(tmp_path / "events_20261001.json", rows)
    good = len(rows) - collector_refused - importer_refused
    first = landing.run("ga4", project, str(ndjson), "--chunk-size", "200")
    assert first["run"] == {"read": len(rows), "imported": good, "duplicates": 0,
                            "refused": collector_refused + importer_refused}, first
    reasons = {r["reason"]: r for r in first["refusals"]}
    assert reasons["GA4 row without event_name"]["example"] == f"{ndjson.name}:{len(rows)}"
    assert any("outside the range" in reason for reason in reasons)
    assert landing.run("ga4", project, str(ndjson))["run"]["read"] == 0
    # the same events exported as Parquet get the same ids: nothing new
    parquet = write_ga4_parquet(tmp_path / "events_20261001.parquet", rows)
    again = landing.run("ga4", project, str(parquet))
    assert again["run"]["imported"] == 0 and again["run"]["duplicates"] == good, again
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)

    found = landing.client.query(
        f"select countIf(name = 'screen_view'), countIf(revenue = 1999), "
        f"countIf(country = 'KR'), countIf(utm_source = 'newsletter'), "
        f"countIf(properties['ga_session_id'] != ''), countIf(profile_id != '') "
        f"from {landing.settings.raw_database}.events where project_id = {{p:String}}",
        parameters={"p": project}).result_rows[0]
    page_views = sum(1 for r in rows[:-3] if r["event_name"] == "page_view")
    purchases = sum(1 for r in rows[:-3] if r["event_name"] == "purchase")
    korea = sum(1 for r in rows[:-3] if r["geo"]["country"] == "South Korea")
    assert found[:3] == (page_views, purchases, korea)
    assert found[3] > 0 and found[4] == good and found[5] > 0


def test_ga4_kill_9_then_resume(landing: Landing, project: str, tmp_path: Path) -> None:
    rows, collector_refused, importer_refused = ga4_rows(500, seed=9)
    ndjson = write_ga4_ndjson(tmp_path / "events.json", rows)
    good = len(rows) - collector_refused - importer_refused
    landing.kill_midway("ga4", project, str(ndjson), "--chunk-size", "100",
                        "--concurrency", "2", "--max-rate", "1000")
    resumed = landing.run("ga4", project, str(ndjson))
    total = resumed["total"]
    assert resumed["resumed"] and total["read"] == len(rows), resumed
    assert total["imported"] + total["duplicates"] == good
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)


def test_openpanel_ndjson_csv_and_profiles(landing: Landing, project: str,
                                           tmp_path: Path) -> None:
    rows, collector_refused, importer_refused = openpanel_rows(300)
    good = len(rows) - collector_refused - importer_refused
    ndjson = write_openpanel(tmp_path / "events.ndjson", rows, "ndjson")
    profiles = write_openpanel(tmp_path / "profiles.ndjson", openpanel_profiles(20), "ndjson")
    first = landing.run("openpanel", project, str(ndjson), str(profiles), "--chunk-size", "300")
    assert first["run"] == {"read": len(rows) + 20, "imported": good + 20, "duplicates": 0,
                            "refused": 2}, first
    # the CSV dump of the same table: the same events
    csv_dump = write_openpanel(tmp_path / "events.csv", rows, "csv")
    again = landing.run("openpanel", project, str(csv_dump))
    assert again["run"]["duplicates"] == good and again["run"]["imported"] == 0, again
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)
    device, profile, session, plan, quote, duration = landing.client.query(
        f"select device_id, profile_id, properties['openpanel.session_id'], "
        f"properties['plan'], properties['it''s'], duration_ms "
        f"from {landing.settings.raw_database}.events where project_id = {{p:String}} and "
        "path = {path:String} and device_id = {d:String} order by created_at limit 1",
        parameters={"p": project, "path": rows[0]["path"], "d": rows[0]["device_id"]}
    ).result_rows[0]
    assert (device, session) == (rows[0]["device_id"], rows[0]["session_id"])
    assert profile == ("" if rows[0]["profile_id"] == device else rows[0]["profile_id"])
    assert (plan, quote, duration) == (rows[0]["properties"]["plan"], 'a "quote"', 0)
    def identified() -> int:
        return int(landing.client.query(
            f"select count() from {landing.settings.raw_database}.profiles "
            "where project_id = {p:String} and kind = 'identify' and first_name = 'Ada'",
            parameters={"p": project}).result_rows[0][0])

    assert wait_until(lambda: identified() == 20, 30, "20 profiles landed")


def test_openpanel_kill_9_then_resume(landing: Landing, project: str, tmp_path: Path) -> None:
    rows, collector_refused, importer_refused = openpanel_rows(700, seed=8)
    good = len(rows) - collector_refused - importer_refused
    csv_dump = write_openpanel(tmp_path / "events.csv", rows, "csv")
    landing.kill_midway("openpanel", project, str(csv_dump), "--chunk-size", "100",
                        "--concurrency", "2", "--max-rate", "1000")
    resumed = landing.run("openpanel", project, str(csv_dump))
    total = resumed["total"]
    assert total["read"] == len(rows) and total["imported"] + total["duplicates"] == good
    assert checkpoint(project)["finished"]  # type: ignore[index]
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)


def test_a_chunk_over_the_collectors_body_limit_is_sent_in_halves(
        landing: Landing, project: str) -> None:
    """The collector (in-process, real Redis) with a 1 KiB body limit (16 KiB a batch)
    answers 413 to a 40 KB chunk: the sender splits it until the halves pass, results in
    order."""
    from fastapi.testclient import TestClient

    from accounts import service
    from accounts.db import session_scope
    from collector.main import create_app
    from importers.engine import Sender, Target
    from trackhouse.settings import get_settings

    with session_scope() as session:
        client, secret = service.create_client(session, project_id=project)
        client_id = client.id
    assert secret is not None
    settings = get_settings().model_copy(update={"collector_max_body_bytes": 1024})
    messages = [{"type": "track", "payload": {"name": f"e{n}", "properties": {
        "__eventId": f"split-{n}", "__timestamp": 1_780_000_000_000 + n, "pad": "x" * 300}}}
        for n in range(100)]
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as http:
        sender = Sender(Target("http://127.0.0.1", client_id, secret), http)
        whole = http.post("/track/batch?import=true", content=orjson.dumps(messages),
                          headers=sender.headers)
        assert whole.status_code == 413, whole.text  # the whole chunk is over the limit
        results = sender.send(messages)
        again = sender.send(messages[::-1])
    assert [r["status"] for r in results] == ["accepted"] * 100
    assert [r["status"] for r in again] == ["duplicate"] * 100

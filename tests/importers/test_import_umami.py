"""``trackhouse import umami``: a real PostgreSQL holding Umami's tables, imported through a
real collector and worker into a raw database of this module's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from importers_support import Landing, checkpoint
from umami_data import UmamiData, umami_database

REFUSED_TIME = "outside the range of imported events"
REFUSED_KEY = "property names must be 1-200 characters"


@pytest.fixture(scope="module")
def umami() -> Iterator[UmamiData]:
    with umami_database(sessions=400) as data:
        yield data


def _args(umami: UmamiData, *extra: str) -> list[str]:
    return ["--database-url", umami.url, "--website-id", umami.website_id, *extra]


def test_import_then_rerun_stores_each_event_once(landing: Landing, project: str,
                                                  umami: UmamiData) -> None:
    refused = umami.bad_times + umami.bad_keys
    good = umami.events - refused
    first = landing.run("umami", project, *_args(umami, "--chunk-size", "700"))
    assert first["run"] == {"read": umami.events, "imported": good, "duplicates": 0,
                            "refused": refused}, first
    reasons = {r["reason"]: r["count"] for r in first["refusals"]}
    assert sum(n for reason, n in reasons.items() if REFUSED_TIME in reason) == umami.bad_times
    assert sum(n for reason, n in reasons.items() if REFUSED_KEY in reason) == umami.bad_keys
    assert all(r["example"] for r in first["refusals"])  # the Umami event id to look at
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)

    # a rerun reads past the checkpoint: nothing new
    again = landing.run("umami", project, *_args(umami))
    assert again["resumed"] is True and again["run"]["read"] == 0
    # read again from the start: every event is known to the collector
    restart = landing.run("umami", project, *_args(umami, "--restart"))
    assert restart["run"] == {"read": umami.events, "imported": 0, "duplicates": good,
                              "refused": refused}, restart
    assert landing.landed(project) == (good, good)


def test_kill_9_then_resume_loses_and_repeats_nothing(landing: Landing, project: str,
                                                      umami: UmamiData) -> None:
    refused = umami.bad_times + umami.bad_keys
    good = umami.events - refused
    landing.kill_midway("umami", project, *_args(umami, "--chunk-size", "100",
                                                 "--concurrency", "2", "--max-rate", "1500"))
    before = checkpoint(project)
    assert before is not None and 0 < before["read"] < umami.events
    resumed = landing.run("umami", project, *_args(umami, "--chunk-size", "1000"))
    assert resumed["resumed"] is True
    total = resumed["total"]
    # chunks acknowledged but not yet checkpointed when the import died come back as
    # duplicates; nothing is counted twice or lost
    assert total["read"] == umami.events and total["refused"] == refused
    assert total["imported"] + total["duplicates"] == good
    assert checkpoint(project)["finished"] is True  # type: ignore[index]
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)


def test_mapping_of_one_umami_event(landing: Landing, project: str, umami: UmamiData) -> None:
    """Columns from the session, the page and the event data, as docs/importers.md says."""
    landing.run("umami", project, *_args(umami))
    import psycopg

    with psycopg.connect(umami.url) as connection:
        event_id, session_id, path, plan, seats = connection.execute(
            "select e.event_id::text, e.session_id::text, e.url_path, p.string_value, "
            "s.number_value from website_event e "
            "join event_data p on p.website_event_id = e.event_id and p.data_key = 'plan' "
            "join event_data s on s.website_event_id = e.event_id and s.data_key = 'seats' "
            "limit 1").fetchone()
        browser, country, city, distinct = connection.execute(
            "select browser, country, city, distinct_id from session where session_id = %s",
            (session_id,)).fetchone()
    landing.wait_landed(project, umami.events - umami.bad_times - umami.bad_keys)
    row = landing.client.query(
        f"select name, device_id, path, origin, browser, country, city, profile_id, "
        f"properties from {landing.settings.raw_database}.events where project_id = {{p:String}}"
        " and properties['umami.visit_id'] != '' and device_id = {d:String} and "
        "properties['plan'] = {plan:String} and path = {path:String} limit 1",
        parameters={"p": project, "d": session_id, "plan": plan, "path": path}).named_results()
    found = next(iter(row))
    assert found["name"] == "signup" and found["device_id"] == session_id
    assert found["origin"] == "https://shop.example.com" and found["browser"] == browser
    assert (found["country"], found["city"]) == (country or "", city or "")
    assert found["profile_id"] == (distinct or "")
    assert found["properties"]["seats"] == str(int(seats))
    assert event_id  # the source row exists

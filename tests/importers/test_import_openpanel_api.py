"""``trackhouse import openpanel --api-url``: OpenPanel's export API (a small server in the
shape of OpenPanel's, ``openpanel_server``) through a real collector and worker into a raw
database of this module's own."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from importers_support import Landing, checkpoint, wait_until
from openpanel_server import OpenPanelApi, openpanel_api_events
from support import local_http_server

REFUSED_TIME = "outside the range of imported events"


@pytest.fixture
def api() -> Iterator[OpenPanelApi]:
    events, profiles, _, _ = openpanel_api_events(600)
    server = OpenPanelApi(events, profiles)
    with local_http_server(server.handler) as url:
        server.url = url
        yield server


def _args(api: OpenPanelApi, *extra: str, secret: str | None = None) -> list[str]:
    return ["--api-url", api.url, "--client-id", api.client_id, "--client-secret",
            secret or api.secret, *extra]


def _identified(landing: Landing, project: str) -> int:
    return int(landing.client.query(
        f"select uniqExact(profile_id) from {landing.settings.raw_database}.profiles "
        "where project_id = {p:String} and kind = 'identify' and first_name = 'Ada'",
        parameters={"p": project}).result_rows[0][0])


def test_api_import_with_profiles_then_rerun(landing: Landing, project: str,
                                             api: OpenPanelApi) -> None:
    events = len(api.events)
    good = events - 2  # one before 2000 (the collector), one without a name (the importer)
    api.throttle_once = True  # a 429 with Retry-After first: waited out, not an error
    first = landing.run("openpanel", project, *_args(api, "--chunk-size", "150"))
    # every event is read once, and each external profile once (before its first event)
    assert first["run"] == {"read": events + 5, "imported": good + 5, "duplicates": 0,
                            "refused": 2}, first
    reasons = {r["reason"]: r for r in first["refusals"]}
    assert any(REFUSED_TIME in reason for reason in reasons), reasons
    assert reasons["OpenPanel event without id or name"]["example"] == api.events[-1]["id"]
    # pages of 150 (the chunk size) one day at a time, newest first, with the includes
    pages = [r for r in api.requests if r.get("limit") == ["150"]]
    assert pages and all(r["start"] == r["end"] for r in pages)
    assert {"profile", "properties", "origin", "referrer"} <= set(pages[0]["includes"])
    days = [r["start"][0] for r in pages if r["page"] == ["1"]]
    assert days == sorted(days, reverse=True) and days[-1] == "1999-06-01"

    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)
    assert wait_until(lambda: _identified(landing, project) == 5, 30, "5 profiles landed")
    first_event = api.events[0]
    device, session, plan, url, region = landing.client.query(
        f"select device_id, properties['openpanel.session_id'], properties['plan'], "
        f"concat(origin, path), region from {landing.settings.raw_database}.events "
        "where project_id = {p:String} and created_at = parseDateTime64BestEffort({t:String}, 3)"
        " and device_id = {d:String}",
        parameters={"p": project, "t": first_event["createdAt"],
                    "d": first_event["deviceId"]}).result_rows[0]
    assert (device, session, plan, region) == (
        first_event["deviceId"], first_event["sessionId"],
        first_event["properties"]["plan"], first_event["region"])
    assert url == first_event["origin"] + first_event["path"]

    # a rerun reads the newest day again (events may have arrived since) and stops there
    again = landing.run("openpanel", project, *_args(api, "--chunk-size", "150"))
    newest = max(e["createdAt"][:10] for e in api.events)
    on_newest = sum(1 for e in api.events if e["createdAt"][:10] == newest)
    assert again["resumed"] and again["run"]["imported"] == 0, again
    assert 0 < again["run"]["read"] and again["run"]["duplicates"] >= on_newest, again
    assert landing.landed(project) == (good, good)


def test_a_refused_secret_is_a_clear_error(landing: Landing, project: str,
                                           api: OpenPanelApi) -> None:
    from typer.testing import CliRunner

    from trackhouse.cli import app

    done = CliRunner().invoke(app, landing.command(
        "openpanel", project, *_args(api, secret="wrong"))[1:])
    assert done.exit_code == 1
    assert "OpenPanel refused the client (401 Client not found)" in done.output
    assert "wrong" not in done.output  # the secret is never printed
    assert landing.landed(project) == (0, 0)


def test_a_failing_page_stops_the_import_and_a_rerun_resumes(
        landing: Landing, project: str, api: OpenPanelApi) -> None:
    events = len(api.events)
    good = events - 2
    days = sorted({e["createdAt"][:10] for e in api.events}, reverse=True)
    api.failing[(days[2], 2)] = 1_000  # the third day's second page fails until healed
    from typer.testing import CliRunner

    from trackhouse.cli import app

    done = CliRunner().invoke(app, landing.command(
        "openpanel", project, *_args(api, "--chunk-size", "50", "--concurrency", "1"))[1:])
    assert done.exit_code == 1, done.output
    assert f"OpenPanel answered 500 to GET /export/events start={days[2]}" in done.output
    stopped = checkpoint(project)
    assert stopped is not None and not stopped["finished"]
    assert 0 < stopped["read"] < events, stopped
    # the position is a page of a day not past the failing one (the chunk in flight when
    # the page failed may not have been checkpointed)
    position = orjson.loads(_position(project) or "{}")
    assert days[2] <= position["day"] <= days[0], position

    api.failing.clear()
    resumed = landing.run("openpanel", project, *_args(api, "--chunk-size", "50"))
    assert resumed["resumed"], resumed
    total = resumed["total"]
    assert total["refused"] == 2, total
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)  # nothing lost, nothing twice
    assert wait_until(lambda: _identified(landing, project) == 5, 30, "5 profiles landed")
    assert checkpoint(project)["finished"]  # type: ignore[index]


def _position(project_id: str) -> str | None:
    from sqlalchemy import select

    from accounts.db import session_scope
    from accounts.models import ImportCheckpoint

    with session_scope() as session:
        return session.scalars(select(ImportCheckpoint.position).where(
            ImportCheckpoint.project_id == project_id)).first()


def test_api_kill_9_then_resume(landing: Landing, project: str, api: OpenPanelApi) -> None:
    """A real importer process killed mid-import (the server keeps answering); the rerun
    continues from the (day, page) checkpoint: every event once, nothing lost."""
    good = len(api.events) - 2
    landing.kill_midway("openpanel", project, *_args(
        api, "--chunk-size", "50", "--concurrency", "2", "--max-rate", "300"))
    resumed = landing.run("openpanel", project, *_args(api, "--chunk-size", "50"))
    assert resumed["resumed"] and resumed["total"]["refused"] == 2, resumed
    landing.wait_landed(project, good)
    assert landing.landed(project) == (good, good)
    assert wait_until(lambda: _identified(landing, project) == 5, 30, "5 profiles landed")
    assert checkpoint(project)["finished"]  # type: ignore[index]


def test_a_server_ignoring_the_day_filter_stops_the_import(api: OpenPanelApi) -> None:
    """The day walk relies on start/end; an API that ignores them would give the same newest
    day for ever: the reader stops with a clear error instead of looping."""
    from importers.engine import ImportFailed
    from importers.openpanel_api import OpenPanelApiSource

    answer = api.answer
    api.answer = lambda path, headers: answer(  # type: ignore[method-assign]
        path.replace("start=", "x-start=").replace("end=", "x-end="), headers)
    source = OpenPanelApiSource(api.url, api.client_id, api.secret)
    with pytest.raises(ImportFailed, match="ignored the start/end day filter"):
        list(source.chunks(None, 1_000))

"""The HTTP API in-process against a real Redis and metadata database: the answers, the auth
matrix, CORS, rate limits, proxies, and bad input (4xx saying what is wrong, nothing stored)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from collector_support import (
    ORIGIN,
    UA_CHROME_WINDOWS,
    UA_GOOGLEBOT,
    UA_IPHONE,
    TestProject,
    buffered,
)

from collector import identity
from collector.buffer import Keys
from trackhouse.settings import Settings


def screen_view(path: str = "/", **properties: object) -> dict:
    return {"type": "track", "payload": {"name": "screen_view", "properties": {
        "__path": f"{ORIGIN}{path}", **properties}}}


# buffered rows leave out the columns whose default the warehouse fills in (test_landing
# checks the landed rows)
TEXT_COLUMNS = (
    "profile_id sdk_name sdk_version origin path query hash title referrer referrer_name "
    "referrer_type utm_source utm_medium utm_campaign utm_term utm_content country region city "
    "os os_version browser browser_version device brand model language screen bot_name").split()
DEFAULTS = {**dict.fromkeys(TEXT_COLUMNS, ""), "imported_at": None, "latitude": None,
            "longitude": None, "revenue": 0, "duration_ms": 0, "is_bot": False,
            "properties": {}, "groups": []}


def buffered_row(raw: bytes) -> dict:
    return {**DEFAULTS, **orjson.loads(raw)}


def last_events(redis_client, count: int, lane: str = "events") -> list[dict]:
    """The last ``count`` event rows buffered in ``lane`` (a request's rows are one chunk of
    lines)."""
    lines: list[bytes] = []
    for chunk in reversed(redis_client.lrange(Keys.buffer(lane), -count, -1)):
        lines[0:0] = chunk.split(b"\n")
    return [buffered_row(line) for line in lines[-count:]]


def last_event(redis_client, lane: str = "events") -> dict:
    return last_events(redis_client, 1, lane)[0]


def test_track_answers_device_and_session(api, project: TestProject, redis_client) -> None:
    before = buffered(redis_client)
    answer = api.post("/track", json=screen_view("/a"), headers=project.browser_headers(
        **{"x-forwarded-for": "81.2.69.142", "openpanel-sdk-name": "web",
           "openpanel-sdk-version": "1.4.1"}))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"deviceId", "sessionId"} and len(body["deviceId"]) == 32
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert buffered(redis_client) == before + 1
    row = last_event(redis_client)
    assert row["device_id"] == body["deviceId"] and row["session_id"] == body["sessionId"]
    assert (row["country"], row["city"], row["sdk_name"], row["sdk_version"]) == (
        "GB", "London", "web", "1.4.1")
    # the same visitor a moment later: same device, same live session
    again = api.post("/track", json=screen_view("/b"), headers=project.browser_headers(
        **{"x-forwarded-for": "81.2.69.142"})).json()
    assert again == body


def test_client_credentials_in_the_body(api, project: TestProject) -> None:
    message = {**screen_view(), "clientId": project.server_client, "clientSecret": project.secret}
    assert api.post("/track", json=message).status_code == 200
    message["clientSecret"] = "wrong"
    assert api.post("/track", json=message).status_code == 401


@pytest.mark.parametrize(
    ("case", "status", "needle"),
    [
        ("no client id", 401, "missing client id"),
        ("unknown client", 401, "unknown client"),
        ("malformed client id", 401, "unknown client"),
        ("wrong secret", 401, "wrong client secret"),
        ("no origin", 401, "Origin"),
        ("wrong origin", 401, "not allowed"),
        ("read client writing", 403, "may not send events"),
    ],
)
def test_auth_matrix(api, project: TestProject, redis_client, case, status, needle) -> None:
    headers = {
        "no client id": {"origin": ORIGIN},
        "unknown client": {"openpanel-client-id": "00000000-0000-4000-8000-000000000000",
                           "origin": ORIGIN},
        "malformed client id": {"openpanel-client-id": "x' or 1=1 --", "origin": ORIGIN},
        "wrong secret": {"openpanel-client-id": project.server_client,
                         "openpanel-client-secret": "nope"},
        "no origin": {"openpanel-client-id": project.browser_client},
        "wrong origin": {"openpanel-client-id": project.browser_client,
                         "origin": "https://evil.example.org"},
        "read client writing": {"openpanel-client-id": project.read_client,
                                "openpanel-client-secret": project.read_secret},
    }[case]
    before = buffered(redis_client)
    answer = api.post("/track", json=screen_view(), headers=headers)
    assert answer.status_code == status
    assert needle in answer.json()["error"]
    assert buffered(redis_client) == before


def test_wildcard_origins(api, fresh_project: TestProject) -> None:
    from accounts import service
    from accounts.auth import forget_client
    from accounts.db import session_scope

    with session_scope() as session:
        client, _ = service.create_client(session, project_id=fresh_project.project_id,
                                          with_secret=False, origins=["https://*.example.net"])
        client_id = client.id
    forget_client(client_id)
    headers = {"openpanel-client-id": client_id}
    ok = api.post("/track", json=screen_view(), headers={**headers,
                                                          "origin": "https://a.b.example.net"})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://a.b.example.net"
    bad = api.post("/track", json=screen_view(), headers={**headers,
                                                           "origin": "https://example.net.evil.com"})
    assert bad.status_code == 401


def test_cors_preflight(api, project: TestProject) -> None:
    request = {"access-control-request-method": "POST",
               "access-control-request-headers": "content-type,openpanel-client-id"}
    allowed = api.options("/track", headers={"origin": ORIGIN, **request})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "openpanel-client-id" in allowed.headers["access-control-allow-headers"]
    assert "POST" in allowed.headers["access-control-allow-methods"]
    unknown = api.options("/track", headers={"origin": "https://evil.example.org", **request})
    assert "access-control-allow-origin" not in unknown.headers
    # a rejected request stays readable, so the SDK sees the 401 and does not retry
    denied = api.post("/track", json=screen_view(), headers={
        "openpanel-client-id": project.browser_client, "origin": "https://evil.example.org"})
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == "https://evil.example.org"


def _hostile_cases() -> list[tuple[str, bytes, int, str]]:
    def dumps(value: object) -> bytes:
        return orjson.dumps(value)

    track = {"type": "track", "payload": {"name": "x"}}
    return [
        ("invalid JSON", b'{"type": "track", "payload": {', 400, "invalid JSON"),
        ("empty body", b"", 400, "empty body"),
        ("not an object", b"[1, 2]", 400, "JSON object"),
        ("unknown type", dumps({"type": "explode", "payload": {}}), 400, "unknown message type"),
        ("alias", dumps({"type": "alias", "payload": {"profileId": "a", "alias": "b"}}), 400,
         "alias"),
        ("name wrong type", dumps({"type": "track", "payload": {"name": 42}}), 400,
         "payload.name"),
        ("name missing", dumps({"type": "track", "payload": {}}), 400, "payload.name"),
        ("empty name", dumps({"type": "track", "payload": {"name": "  "}}), 400, "payload.name"),
        ("reserved name", dumps({"type": "track", "payload": {"name": "session_start"}}), 400,
         "reserved"),
        ("NUL in name", dumps({"type": "track", "payload": {"name": "a\x00b"}}), 400,
         "control characters"),
        ("huge name", dumps({"type": "track", "payload": {"name": "n" * 5000}}), 400,
         "payload.name"),
        ("control chars in key", dumps({"type": "track", "payload": {
            "name": "x", "properties": {"a\x1bb": 1}}}), 400, "control characters"),
        ("too many properties", dumps({"type": "track", "payload": {
            "name": "x", "properties": {f"p{i}": i for i in range(500)}}}), 400,
         "at most 200 properties"),
        ("long value", dumps({"type": "track", "payload": {
            "name": "x", "properties": {"p": "v" * 9000}}}), 400, "longer than"),
        ("properties not an object", dumps({"type": "track", "payload": {
            "name": "x", "properties": "a"}}), 400, "payload.properties"),
        ("bad timestamp", dumps({"type": "track", "payload": {
            "name": "x", "properties": {"__timestamp": "not a time"}}}), 400, "__timestamp"),
        ("bad device id", dumps({"type": "track", "payload": {
            "name": "x", "properties": {"__deviceId": "d" * 65}}}), 400, "__deviceId"),
        ("NUL in device id", dumps({"type": "track", "payload": {
            "name": "x", "properties": {"__deviceId": "a\x00b"}}}), 400, "__deviceId"),
        ("newline in device id", dumps({"type": "track", "payload": {
            "name": "x", "properties": {"__deviceId": "a\nb"}}}), 400, "__deviceId"),
        ("identify without profile", dumps({"type": "identify", "payload": {"email": "a@b.co"}}),
         400, "payload.profileId"),
        ("invalid email", dumps({"type": "identify", "payload": {
            "profileId": "u", "email": "not-an-email"}}), 400, "payload.email"),
        ("negative increment", dumps({"type": "increment", "payload": {
            "profileId": "u", "property": "p", "value": -3}}), 400, "payload.value"),
        ("lone surrogate", b'{"type": "track", "payload": {"name": "\\ud800"}}', 400,
         "invalid JSON"),
        ("payload wrong type", dumps({**track, "payload": []}), 400, "payload"),
    ]


@pytest.mark.parametrize(("case", "body", "status", "needle"), _hostile_cases(),
                         ids=[c[0] for c in _hostile_cases()])
def test_bad_input_is_refused_and_nothing_stored(api, project: TestProject, redis_client,
                                                 case, body, status, needle) -> None:
    before = buffered(redis_client)
    answer = api.post("/track", content=body, headers={
        **project.browser_headers(), "content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert needle in answer.json()["error"]
    assert buffered(redis_client) == before


def test_sql_like_text_is_stored_verbatim(api, project: TestProject, redis_client) -> None:
    nasty = "'); drop table trackhouse.events; -- <script>alert(1)</script> 💥 \u202e"
    answer = api.post("/track", json={"type": "track", "payload": {
        "name": nasty, "properties": {nasty: nasty}}}, headers=project.browser_headers())
    assert answer.status_code == 200
    row = last_event(redis_client)
    assert row["name"] == nasty and row["properties"] == {nasty: nasty}


def test_oversized_body_is_413(make_api, project: TestProject, redis_client) -> None:
    api = make_api(collector_max_body_bytes=4096)
    before = buffered(redis_client)
    big = {"type": "track", "payload": {"name": "x", "properties": {
        f"k{i}": "v" * 100 for i in range(60)}}}
    answer = api.post("/track", json=big, headers=project.browser_headers())
    assert answer.status_code == 413 and "larger than 4096" in answer.json()["error"]
    assert buffered(redis_client) == before


def test_body_without_a_declared_length(make_api, project: TestProject, redis_client) -> None:
    """A chunked body (no content-length) is read in its parts, and refused once past the
    limit."""
    api = make_api(collector_max_body_bytes=4096)
    before = buffered(redis_client)
    event = orjson.dumps(screen_view("/chunked"))
    headers = {**project.browser_headers(), "content-type": "application/json"}
    answer = api.post("/track", content=iter([event[:10], event[10:]]), headers=headers)
    assert answer.status_code == 200 and buffered(redis_client) == before + 1
    assert last_event(redis_client)["path"] == "/chunked"
    padding = b" " * 3000
    answer = api.post("/track", content=iter([padding, padding, event]), headers=headers)
    assert answer.status_code == 413 and "larger than 4096" in answer.json()["error"]
    assert buffered(redis_client) == before + 1


def test_rate_limits_per_ip_and_per_client(make_api, fresh_project: TestProject) -> None:
    # hour windows: a window boundary inside the test's few milliseconds is all but impossible
    api = make_api(collector_rate_limit_ip="3/hour", collector_rate_limit_client="5/hour")
    statuses = [api.post("/track", json=screen_view(), headers=fresh_project.browser_headers(
        **{"x-forwarded-for": "81.2.69.142"})).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = api.post("/track", json=screen_view(), headers=fresh_project.browser_headers(
        **{"x-forwarded-for": "81.2.69.142"}))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 3600
    assert "rate limit" in limited.json()["error"]
    # another visitor is not limited by the first one's IP, but the client's limit (5) is
    # reached: 3 accepted + 1 more here; the 4th and 5th counted hits were refused above
    other = [api.post("/track", json=screen_view(), headers=fresh_project.browser_headers(
        **{"x-forwarded-for": f"8.8.8.{i}"})).status_code for i in range(3)]
    assert other[-1] == 429


def test_client_ip_only_from_trusted_proxies(make_api, project: TestProject,
                                             redis_client) -> None:
    untrusted = make_api(collector_trusted_proxies=["10.0.0.0/8"])
    headers = project.browser_headers(**{"x-forwarded-for": "81.2.69.142"})
    assert untrusted.post("/track", json=screen_view(), headers=headers).status_code == 200
    assert last_event(redis_client)["country"] == ""  # forwarded IP ignored: peer is 127.0.0.1
    trusted = make_api()
    assert trusted.post("/track", json=screen_view(), headers=headers).status_code == 200
    assert last_event(redis_client)["country"] == "GB"
    # a server-side SDK with its secret forwards the visitor's IP and user agent
    server = project.server_headers(**{"openpanel-client-ip": "8.8.8.8", "user-agent": UA_IPHONE})
    assert untrusted.post("/track", json=screen_view(), headers=server).status_code == 200
    row = last_event(redis_client)
    assert (row["country"], row["os"]) == ("US", "iOS")


def test_bots_flagged_but_secret_clients_never_bots(api, project: TestProject,
                                                   redis_client) -> None:
    api.post("/track", json=screen_view(), headers=project.browser_headers(
        **{"user-agent": UA_GOOGLEBOT}))
    row = last_event(redis_client)
    assert row["is_bot"] is True and "Googlebot" in row["bot_name"]
    api.post("/track", json=screen_view(), headers=project.server_headers(
        **{"user-agent": "python-requests/2.31"}))
    row = last_event(redis_client)
    assert row["is_bot"] is False and row["bot_name"] == ""


def test_reserved_properties_become_columns(api, project: TestProject, redis_client) -> None:
    properties = {
        "__path": f"{ORIGIN}/pricing?utm_source=news&utm_medium=email&utm_campaign=spring#plans",
        "__title": "Pricing", "__referrer": "https://www.google.com/search?q=x",
        "__revenue": 1999, "__screen": "390x844", "__language": "de-DE", "__os": "CustomOS",
        "__timestamp": "2000-01-01T00:00:00Z", "plan": "pro",
    }
    api.post("/track", json={"type": "track", "payload": {"name": "purchase", "properties":
                                                           properties, "profileId": 42}},
             headers=project.browser_headers())
    row = last_event(redis_client)
    expected = {"origin": ORIGIN, "path": "/pricing", "hash": "plans", "title": "Pricing",
                "referrer_name": "Google", "referrer_type": "search", "utm_source": "news",
                "utm_medium": "email", "utm_campaign": "spring", "revenue": 1999,
                "screen": "390x844", "language": "de-DE", "os": "CustomOS", "profile_id": "42",
                "properties": {"plan": "pro"}, "imported_at": None}
    assert {key: row[key] for key in expected} == expected
    # a live event's time is clamped to at most 7 days in the past
    received = datetime.fromisoformat(row["received_at"])
    assert datetime.fromisoformat(row["created_at"]) == received - timedelta(days=7)


def test_an_imported_visitors_own_columns_replace_the_derived_ones(
        api, project: TestProject, redis_client) -> None:
    """An importer's per-event columns (``__os``, ``__country``...) replace what the
    collector derives from the request, each column once in the row's JSON, and events with
    other values (or none) keep theirs."""
    import json

    own = {"__os": "Plan 9", "__browser": "Mosaic", "__browser_version": "2.1",
           "__device": "tablet", "__country": "IS", "__region": "Capital", "__city": "Reykjavik",
           "__language": "is-IS", "__screen": "640x480", "__brand": "Acme", "__model": "One",
           "__os_version": 7}
    items = [screen_view("/own", __timestamp="2026-01-05T08:00:00Z", **own),
             screen_view("/partly", __timestamp="2026-01-05T08:00:01Z", __os="BeOS"),
             screen_view("/derived", __timestamp="2026-01-05T08:00:02Z")]
    answer = api.post("/track/batch?import=true", json=items, headers=project.server_headers())
    assert answer.json()["accepted"] == 3
    (chunk,) = redis_client.lrange(Keys.buffer("imports"), -1, -1)
    for line in chunk.split(b"\n"):
        pairs = json.loads(line, object_pairs_hook=lambda found: found)
        assert len({key for key, _ in pairs}) == len(pairs), line
    own_row, partly, derived = last_events(redis_client, 3, "imports")
    assert {column: own_row[column] for column in (
        "os", "browser", "browser_version", "device", "country", "region", "city", "language",
        "screen", "brand", "model", "os_version")} == {
        "os": "Plan 9", "browser": "Mosaic", "browser_version": "2.1", "device": "tablet",
        "country": "IS", "region": "Capital", "city": "Reykjavik", "language": "is-IS",
        "screen": "640x480", "brand": "Acme", "model": "One", "os_version": "7"}
    assert partly["os"] == "BeOS" and partly["browser"] == derived["browser"] != "Mosaic"
    assert derived["os"] != "BeOS" and derived["language"] == ""


def test_batch_json_and_ndjson_with_per_item_results(api, project: TestProject,
                                                     redis_client) -> None:
    items = [screen_view("/1"), {"type": "alias", "payload": {}},
             {"type": "increment", "payload": {"profileId": "u1", "property": "logins"}}]
    answer = api.post("/track/batch", json=items, headers=project.browser_headers())
    assert answer.status_code == 200
    body = answer.json()
    assert (body["accepted"], body["errors"]) == (2, 1)
    assert [r["status"] for r in body["results"]] == ["accepted", "error", "accepted"]
    assert "alias" in body["results"][1]["error"]
    ndjson = b"\n".join(orjson.dumps(i) for i in (screen_view("/2"), screen_view("/3")))
    answer = api.post("/track/batch", content=ndjson, headers={
        **project.browser_headers(), "content-type": "application/x-ndjson"})
    assert answer.json()["accepted"] == 2
    broken = api.post("/track/batch", content=b'{"type": "track"}\n{oops',
                      headers=project.browser_headers())
    assert broken.status_code == 400 and "line 2" in broken.json()["error"]


def test_import_keeps_timestamps_and_sets_imported_at(api, project: TestProject,
                                                      redis_client) -> None:
    item = screen_view("/old", __timestamp="2026-01-05T08:00:00Z")
    live_before = redis_client.llen(Keys.buffer("events"))
    answer = api.post("/track/batch?import=true", json=[item], headers=project.server_headers())
    assert answer.json()["accepted"] == 1
    # imports wait in a lane of their own, not in the live events' buffer
    assert redis_client.llen(Keys.buffer("events")) == live_before
    row = last_event(redis_client, "imports")
    assert row["created_at"] == "2026-01-05 08:00:00.000" and row["imported_at"]
    # the header works as well as the query parameter
    item = screen_view("/old-header", __timestamp="2026-01-05T09:00:00Z")
    api.post("/track/batch", json=[item], headers=project.server_headers(
        **{"x-trackhouse-import": "true"}))
    row = last_event(redis_client, "imports")
    assert row["created_at"] == "2026-01-05 09:00:00.000" and row["imported_at"]
    # the browser client cannot import: it has no secret to prove
    browser_item = screen_view("/old-browser", __timestamp="2026-01-05T08:00:00Z")
    refused = api.post("/track/batch?import=true", json=[browser_item],
                       headers=project.browser_headers())
    assert refused.status_code == 403 and "secret" in refused.json()["error"]
    assert last_event(redis_client, "imports")["path"] == "/old-header"


def test_server_side_batches_are_live_unless_they_ask_to_import(
        api, fresh_project: TestProject, redis_client) -> None:
    """A secret client's batch without the import flag (the Python SDK's) is live traffic:
    clamped times, no imported_at, the visitor's live session."""
    headers = fresh_project.server_headers(**{"openpanel-client-ip": "81.2.69.142"})
    old = screen_view("/server-old", __timestamp="2026-01-05T08:00:00Z")
    recent = screen_view("/server-now")
    body = api.post("/track/batch", json=[old, recent], headers=headers).json()
    assert body["accepted"] == 2
    first, second = body["results"]
    assert first["deviceId"] == second["deviceId"]
    rows = last_events(redis_client, 2)
    assert [row["path"] for row in rows] == ["/server-old", "/server-now"]
    assert all(row["imported_at"] is None for row in rows)
    received = datetime.fromisoformat(rows[0]["received_at"]).replace(tzinfo=UTC)
    clamped = received - timedelta(days=7)
    assert datetime.fromisoformat(rows[0]["created_at"]).replace(tzinfo=UTC) == clamped
    # live session ids (started at the event's own time), not an import's half-hour ids
    assert first["sessionId"] == identity.session_id(
        fresh_project.project_id, first["deviceId"], int(clamped.timestamp() * 1000))
    # ...and the session /track continues for the same visitor
    live = api.post("/track", json=screen_view("/browser"), headers=headers).json()
    assert live == {"deviceId": second["deviceId"], "sessionId": second["sessionId"]}


def test_same_event_twice_is_accepted_once(api, project: TestProject, redis_client) -> None:
    headers = project.browser_headers()
    cases = [
        screen_view("/id", __eventId="evt-123"),  # own id
        screen_view("/ts", __timestamp="2026-11-01T10:00:00Z"),  # content + client time
        screen_view("/plain"),  # neither: same body, IP and UA within the duplicate window
    ]
    for message in cases:
        before = buffered(redis_client)
        first = api.post("/track", json=message, headers=headers)
        second = api.post("/track", json=message, headers=headers)
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json()
        assert buffered(redis_client) == before + 1
    batch = api.post("/track/batch", json=[cases[0], cases[0]], headers=headers).json()
    assert [r["status"] for r in batch["results"]] == ["duplicate", "duplicate"]


def test_the_duplicate_window_is_a_setting_in_milliseconds(make_api, fresh_project: TestProject,
                                                           redis_client) -> None:
    """An id-less body's fingerprint is remembered for collector_duplicate_window_ms (SET NX
    PX): the same body inside it is a duplicate, just after it a new event."""
    api = make_api(collector_duplicate_window_ms=300)
    headers = fresh_project.browser_headers(**{"x-forwarded-for": "81.2.69.142"})
    message = screen_view("/window")

    def status() -> str:
        answer = api.post("/track/batch", json=[message], headers=headers).json()
        return answer["results"][0]["status"]

    assert [status(), status()] == ["accepted", "duplicate"]
    fingerprint = identity.request_fingerprint(fresh_project.project_id, message, "81.2.69.142",
                                               UA_CHROME_WINDOWS)
    assert 0 < redis_client.pttl(Keys.dedup("req", fingerprint)) <= 300
    time.sleep(0.35)
    assert status() == "accepted"


def test_backlog_past_its_bound_answers_503(make_api, project: TestProject,
                                            redis_client) -> None:
    api = make_api(collector_backlog_limit=1)
    redis_client.incr(Keys.buffered_rows("profiles"))  # as if one row waited
    try:
        before = buffered(redis_client)
        answer = api.post("/track", json=screen_view(), headers=project.browser_headers())
        assert answer.status_code == 503 and answer.headers["retry-after"]
        assert buffered(redis_client) == before
    finally:
        redis_client.decr(Keys.buffered_rows("profiles"))


def test_fast_path_answers_as_the_documented_routes(project: TestProject) -> None:
    """/track and /track/batch are answered outside FastAPI (``collector.fastpath``); the
    FastAPI routes that document them answer the same, errors included."""
    from fastapi.testclient import TestClient

    from collector.fastpath import IngestFastPath
    from collector.main import create_app

    settings = Settings(collector_max_body_bytes=4096)
    headers = project.browser_headers(**{"x-forwarded-for": "81.2.69.142"})
    server = project.server_headers(**{"x-forwarded-for": "81.2.69.142"})
    big = {"type": "track", "payload": {"name": "x", "properties": {
        f"k{i}": "v" * 100 for i in range(60)}}}

    def answers(fast_path: bool) -> list[tuple[int, object, str | None, str | None]]:
        run = uuid.uuid4().hex  # new event ids for each app
        requests = [
            ("/track", orjson.dumps(screen_view("/a", __eventId=f"{run}-1")), headers),
            ("/track", orjson.dumps(screen_view("/a", __eventId=f"{run}-1")), headers),  # duplicate
            ("/track/batch", orjson.dumps([screen_view("/b", __eventId=f"{run}-2"), {"type": "x"}]),
             server),
            ("/track/batch?import=true", orjson.dumps([screen_view("/c")]), headers),  # 403
            ("/track", b"{not json", headers),
            ("/track", orjson.dumps(screen_view()), {**headers, "openpanel-client-id": "nope"}),
            ("/track", orjson.dumps(big), headers),
        ]
        app = create_app(settings, fast_path=fast_path)
        with TestClient(app, client=("127.0.0.1", 50000)) as client:
            results = []
            for path, body, request_headers in requests:
                answer = client.post(path, content=body, headers={
                    **request_headers, "content-type": "application/json"})
                content = answer.json()
                if path == "/track/batch" and answer.status_code == 200:
                    content = [item["status"] for item in content["results"]]
                elif answer.status_code == 200:
                    content = sorted(content)
                results.append((answer.status_code, content,
                                answer.headers.get("access-control-allow-origin"),
                                answer.headers.get("content-type")))
        assert isinstance(app.middleware_stack, IngestFastPath) is fast_path
        return results

    fast = answers(fast_path=True)
    assert [status for status, *_ in fast] == [200, 200, 200, 403, 400, 401, 413]
    assert fast[2][1] == ["accepted", "error"] and fast[0][2] == ORIGIN
    assert answers(fast_path=False) == fast


def test_health_and_docs(api) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    schema = api.get("/openapi.json").json()
    assert {"/track", "/track/batch", "/health", "/ready"} <= set(schema["paths"])
    assert api.get("/docs").status_code == 200


def test_live_sessions_split_after_30_idle_minutes(api, fresh_project: TestProject) -> None:
    headers = fresh_project.browser_headers(**{"x-forwarded-for": "92.40.1.1"})
    now = datetime.now(UTC)

    def at(moment: datetime, path: str) -> dict:
        return api.post("/track", json=screen_view(path, __timestamp=moment.isoformat()),
                        headers=headers).json()

    early = at(now - timedelta(minutes=45), "/1")
    later = at(now - timedelta(minutes=10), "/2")  # 35 idle minutes: a new session
    soon = at(now - timedelta(minutes=9), "/3")
    assert early["deviceId"] == later["deviceId"] == soon["deviceId"]
    assert early["sessionId"] != later["sessionId"] == soon["sessionId"]


def test_an_earlier_stamped_event_arriving_later_keeps_the_session(
        api, fresh_project: TestProject, redis_client) -> None:
    """Two requests of one visit racing: the later-stamped one arrives first. The session
    keeps the start it was first seen with, so both get the same session id."""
    from collector import identity

    headers = fresh_project.browser_headers(**{"x-forwarded-for": "92.40.7.7"})
    now = datetime.now(UTC).replace(microsecond=0)
    later, earlier = now - timedelta(seconds=5), now - timedelta(seconds=20)
    first = api.post("/track", json=screen_view("/2", __timestamp=later.isoformat()),
                     headers=headers).json()
    second = api.post("/track", json=screen_view("/1", __timestamp=earlier.isoformat()),
                      headers=headers).json()
    assert second == first
    later_ms = int(later.timestamp() * 1000)
    assert first["sessionId"] == identity.session_id(fresh_project.project_id,
                                                     first["deviceId"], later_ms)
    today = datetime.now(UTC).date()
    start, last_seen = redis_client.hget(Keys.sessions(fresh_project.project_id, today),
                                         first["deviceId"]).decode().split(":")
    assert (int(start), int(last_seen)) == (later_ms, later_ms)


def test_previous_days_salt_keeps_a_live_visit(api, fresh_project: TestProject,
                                              redis_client) -> None:
    from collector import identity

    headers = fresh_project.browser_headers(**{"x-forwarded-for": "86.128.1.1"})
    api.post("/track", json=screen_view("/warm"), headers=headers)  # creates today's salts
    today = datetime.now(UTC).date()
    yesterday_salt = redis_client.get(Keys.salt(today - timedelta(days=1))).decode()
    other_ip = "86.128.1.2"
    yesterdays_device = identity.device_id(yesterday_salt, UA_CHROME_WINDOWS, other_ip,
                                           fresh_project.project_id)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    yesterdays_sessions = Keys.sessions(fresh_project.project_id, today - timedelta(days=1))
    redis_client.hset(yesterdays_sessions, yesterdays_device,
                      f"{now_ms - 60_000}:{now_ms - 60_000}")
    answer = api.post("/track", json=screen_view("/after-midnight"),
                      headers={**headers, "x-forwarded-for": other_ip}).json()
    assert answer["deviceId"] == yesterdays_device
    assert answer["sessionId"] == identity.session_id(fresh_project.project_id,
                                                      yesterdays_device, now_ms - 60_000)
    # the visit went on under yesterday's id, and that session's last-seen moved
    start, last_seen = redis_client.hget(yesterdays_sessions, yesterdays_device).split(b":")
    assert int(start) == now_ms - 60_000 and int(last_seen) >= now_ms
    # yesterday's session idle for more than 30 minutes: today's id, a new session
    third_ip = "86.128.1.3"
    idle_device = identity.device_id(yesterday_salt, UA_CHROME_WINDOWS, third_ip,
                                      fresh_project.project_id)
    redis_client.hset(yesterdays_sessions, idle_device,
                      f"{now_ms - 7_200_000}:{now_ms - 3_600_000}")
    answer = api.post("/track", json=screen_view("/next-morning"),
                      headers={**headers, "x-forwarded-for": third_ip}).json()
    assert answer["deviceId"] not in (idle_device, "")
    assert answer["deviceId"] == identity.device_id(
        redis_client.get(Keys.salt(today)).decode(), UA_CHROME_WINDOWS, third_ip,
        fresh_project.project_id)


def test_profile_answers_carry_the_live_session(api, fresh_project: TestProject,
                                                redis_client) -> None:
    """identify, increment, decrement, group and assign_group answer the device's live
    session as a track call would (OpenPanel's web SDK keeps whatever sessionId comes back),
    and leave the key out while the device has none: they neither open nor extend one."""
    browser = fresh_project.browser_headers(**{"x-forwarded-for": "81.2.69.160"})
    profile_messages = [
        {"type": "identify", "payload": {"profileId": "u-7", "firstName": "Ada"}},
        {"type": "increment", "payload": {"profileId": "u-7", "property": "logins"}},
        {"type": "decrement", "payload": {"profileId": "u-7", "property": "credits"}},
        {"type": "group", "payload": {"id": "acme", "type": "company", "name": "Acme"}},
        {"type": "assign_group", "payload": {"profileId": "u-7", "groupIds": ["acme"]}},
    ]
    before = api.post("/track", json=profile_messages[0], headers=browser).json()
    assert set(before) == {"deviceId"} and before["deviceId"]
    today = datetime.now(UTC).date()
    assert redis_client.hget(Keys.sessions(fresh_project.project_id, today),
                             before["deviceId"]) is None

    view = api.post("/track", json=screen_view("/account"), headers=browser).json()
    assert view["deviceId"] == before["deviceId"] and view["sessionId"]
    for message in profile_messages:
        assert api.post("/track", json=message, headers=browser).json() == view, message
    batch = api.post("/track/batch", json=profile_messages, headers=browser).json()
    assert {(r["deviceId"], r["sessionId"]) for r in batch["results"]} == {
        (view["deviceId"], view["sessionId"])}
    # a session idle past 30 minutes is over: no session id
    started_ms = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    redis_client.hset(Keys.sessions(fresh_project.project_id, today), view["deviceId"],
                      f"{started_ms}:{started_ms}")
    renamed = {"type": "identify", "payload": {"profileId": "u-7", "firstName": "Ada L."}}
    assert api.post("/track", json=renamed, headers=browser).json() == {
        "deviceId": view["deviceId"]}
    # a visit live under yesterday's device id (past midnight) answers that id and session
    yesterday_salt = redis_client.get(Keys.salt(today - timedelta(days=1))).decode()
    other_ip = "81.2.69.161"
    yesterdays_device = identity.device_id(yesterday_salt, UA_CHROME_WINDOWS, other_ip,
                                           fresh_project.project_id)
    recent_ms = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    redis_client.hset(Keys.sessions(fresh_project.project_id, today - timedelta(days=1)),
                      yesterdays_device, f"{recent_ms}:{recent_ms}")
    answer = api.post("/track", json=profile_messages[0],
                      headers={**browser, "x-forwarded-for": other_ip}).json()
    assert answer == {"deviceId": yesterdays_device, "sessionId": identity.session_id(
        fresh_project.project_id, yesterdays_device, recent_ms)}


def test_survives_redis_forgetting_its_scripts(api, project: TestProject, redis_client) -> None:
    assert api.post("/track", json=screen_view("/s1"), headers=project.browser_headers()
                    ).status_code == 200
    redis_client.script_flush()  # as after a Redis restart without persistence of scripts
    before = buffered(redis_client)
    assert api.post("/track", json=screen_view("/s2"), headers=project.browser_headers()
                    ).status_code == 200
    assert buffered(redis_client) == before + 1


def test_redis_down_is_a_json_503(make_api, project: TestProject) -> None:
    from collector_support import root_fixtures

    api = make_api(redis_url=f"redis://127.0.0.1:{root_fixtures().free_port()}/0")
    answer = api.post("/track", json=screen_view(), headers=project.browser_headers())
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "unavailable" in answer.json()["error"]


def test_fastapi_telemetry_stays_off_whatever_the_environment(make_api, monkeypatch,
                                                             caplog) -> None:
    """FastAPI's built-in OpenTelemetry would, with FASTAPI_OTEL_AUTO_CONFIGURE=true, set up an
    export to the OTLP endpoint named in the environment at startup; the collector never tries
    (no configuration attempt is logged) and traces nothing."""
    from opentelemetry import trace

    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/otlp")
    with caplog.at_level("DEBUG", logger="fastapi"):
        api = make_api()
        assert api.get("/health").status_code == 200
    assert not [r for r in caplog.records if "telemetry" in r.getMessage().lower()]
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"


def test_a_live_batch_of_thousands_of_devices(api, fresh_project: TestProject,
                                              redis_client) -> None:
    """One live batch with more devices than Lua's unpack() takes at once: every row gets its
    device's session, stored in today's session hash, and a second event of the same device
    later in the batch continues that session."""
    from collector import identity

    headers = fresh_project.server_headers()
    devices = 4_500  # the sessions written back: 9,000 values, past unpack()'s 8,000
    batch = [screen_view(f"/d{n}", __deviceId=f"sdk-device-{n}") for n in range(devices)]
    batch.append(screen_view("/again", __deviceId="sdk-device-7"))
    body = api.post("/track/batch", json=batch, headers=headers).json()
    assert (body["accepted"], body["errors"]) == (devices + 1, 0)
    results = body["results"]
    assert results[-1]["sessionId"] == results[7]["sessionId"]
    assert len({r["sessionId"] for r in results}) == devices
    today = datetime.now(UTC).date()
    stored = redis_client.hgetall(Keys.sessions(fresh_project.project_id, today))
    assert len(stored) == devices
    start = int(stored[b"sdk-device-4499"].split(b":")[0])
    assert results[4499]["sessionId"] == identity.session_id(
        fresh_project.project_id, "sdk-device-4499", start)

"""End to end: every message type through the HTTP API, the Redis buffer and the RQ worker
into ClickHouse; duplicates never land twice; bots are stored flagged."""

from __future__ import annotations

import time
import uuid

from collector_support import (
    ORIGIN,
    UA_GOOGLEBOT,
    UA_IPHONE,
    TestProject,
    buffered,
    make_project,
    wait_until,
)

from collector.buffer import Keys


def count(ch, table: str, project_id: str) -> int:
    return int(ch.query(f"select count() from trackhouse.{table} where project_id = {{p:String}}",
                        parameters={"p": project_id}).result_rows[0][0])


def raw_rows(project_id: str, name: str, n: int) -> list[bytes]:
    """``n`` buffered event rows (JSONEachRow) of ``project_id``, each with a new id."""
    return [b'{"id": "%s", "project_id": "%s", "name": "%s", "created_at": "2026-11-01 00:00:00",'
            b' "received_at": "2026-11-01 00:00:00"}' % (str(uuid.uuid4()).encode(),
                                                         project_id.encode(), name.encode())
            for _ in range(n)]


def test_every_message_type_lands(api, worker, fresh_project: TestProject, ch) -> None:
    project = fresh_project
    browser = project.browser_headers(**{"x-forwarded-for": "81.2.69.142",
                                         "user-agent": UA_IPHONE, "openpanel-sdk-name": "web"})
    server = project.server_headers()
    page = {"type": "track", "payload": {"name": "screen_view", "properties": {
        "__path": f"{ORIGIN}/pricing?utm_source=news&utm_campaign=spring",
        "__referrer": "https://www.google.com/", "__title": "Pricing", "plan": "pro"}}}
    messages = [
        (browser, page),
        (browser, {"type": "track", "payload": {"name": "purchase", "profileId": "u-1",
                                                "groups": ["acme"], "properties": {
                                                    "__revenue": 4900, "items": 2}}}),
        (server, {"type": "identify", "payload": {"profileId": "u-1", "firstName": "Ada",
                                                  "lastName": "Lovelace",
                                                  "email": "ada@example.com",
                                                  "avatar": "https://example.com/a.png",
                                                  "properties": {"tier": "gold"}}}),
        (server, {"type": "increment", "payload": {"profileId": "u-1", "property": "logins",
                                                   "value": 3}}),
        (server, {"type": "decrement", "payload": {"profileId": "u-1", "property": "logins"}}),
        (server, {"type": "group", "payload": {"id": "acme", "type": "company",
                                               "name": "Acme Inc"}}),
        (server, {"type": "assign_group", "payload": {"profileId": "u-1",
                                                      "groupIds": ["acme"]}}),
        (browser | {"user-agent": UA_GOOGLEBOT}, page),
    ]
    for headers, message in messages:
        answer = api.post("/track", json=message, headers=headers)
        assert answer.status_code == 200, answer.text
    imported = [{"type": "track", "payload": {"name": "signup_completed", "properties": {
        "__timestamp": "2026-01-02T03:04:05.678Z", "__eventId": "imp-1"}}}]
    assert api.post("/track/batch?import=true", json=imported,
                    headers=server).json()["accepted"] == 1

    wait_until(lambda: count(ch, "events", project.project_id) == 4
               and count(ch, "profiles", project.project_id) == 5, message="all rows landed")
    rows = ch.query(
        "select name, country, city, os, device, browser, referrer_name, referrer_type, "
        "utm_source, utm_campaign, path, title, properties, revenue, profile_id, groups, is_bot, "
        "sdk_name, imported_at, toString(created_at), session_id != '' "
        "from trackhouse.events where project_id = {p:String} order by name, is_bot",
        parameters={"p": project.project_id}).named_results()
    by_name = {(r["name"], r["is_bot"]): r for r in rows}
    view = by_name[("screen_view", False)]
    assert (view["country"], view["city"], view["os"], view["device"]) == (
        "GB", "London", "iOS", "mobile")
    assert (view["referrer_name"], view["referrer_type"], view["utm_source"],
            view["utm_campaign"], view["path"], view["title"]) == (
        "Google", "search", "news", "spring", "/pricing", "Pricing")
    assert view["properties"] == {"plan": "pro"} and view["sdk_name"] == "web"
    assert view["imported_at"] is None
    purchase = by_name[("purchase", False)]
    assert (purchase["revenue"], purchase["profile_id"], purchase["groups"]) == (
        4900, "u-1", ["acme"])
    assert purchase["properties"] == {"items": "2"}
    bot = by_name[("screen_view", True)]
    assert bot["device"] == "bot"
    old = by_name[("signup_completed", False)]
    assert old["toString(created_at)"] == "2026-01-02 03:04:05.678" and old["imported_at"]

    profiles = ch.query(
        "select kind, profile_id, first_name, email, property, delta, properties "
        "from trackhouse.profiles where project_id = {p:String} order by kind",
        parameters={"p": project.project_id}).result_rows
    kinds = {row[0]: row for row in profiles}
    assert set(kinds) == {"identify", "increment", "decrement", "group", "assign_group"}
    assert kinds["identify"][2:4] == ("Ada", "ada@example.com")
    assert kinds["identify"][6] == {"tier": "gold"}
    total = sum(r[5] for r in profiles if r[0] in ("increment", "decrement"))
    assert (kinds["increment"][4], total) == ("logins", 2.0)
    assert kinds["group"][1] == "acme"


def test_retries_never_count_twice(api, worker, fresh_project: TestProject, ch, redis_client):
    project = fresh_project
    headers = project.browser_headers()
    accepted = 0
    for n in range(30):
        message = {"type": "track", "payload": {"name": "click", "properties": {
            "__eventId": f"e-{n}", "n": n}}}
        for _ in range(3):  # the SDK's retries
            answer = api.post("/track", json=message, headers=headers)
            assert answer.status_code == 200
        accepted += 1
    batch = [{"type": "track", "payload": {"name": "click", "properties": {
        "__eventId": f"e-{n}", "n": n}}} for n in range(25, 40)]
    body = api.post("/track/batch", json=batch, headers=headers).json()
    assert (body["accepted"], body["duplicates"]) == (10, 5)
    accepted += 10
    wait_until(lambda: count(ch, "events", project.project_id) == accepted,
               message="accepted events landed")
    distinct = ch.query("select uniqExact(id) from trackhouse.events where project_id = "
                        "{p:String}", parameters={"p": project.project_id}).result_rows[0][0]
    assert distinct == accepted == count(ch, "events", project.project_id)


def test_identical_clicks_seconds_apart_are_two_events(api, worker, fresh_project: TestProject,
                                                       ch, redis_client) -> None:
    """A body with neither __eventId nor __timestamp: fired twice at once it counts once (the
    duplicate window, 1 s by default); the same click 2 s later is an event of its own."""
    headers = fresh_project.browser_headers()
    click = {"type": "track", "payload": {"name": "cta_click", "properties": {
        "__path": f"{ORIGIN}/pricing", "plan": "pro"}}}
    for _ in range(2):  # a double fire
        assert api.post("/track", json=click, headers=headers).status_code == 200
    time.sleep(2)
    assert api.post("/track", json=click, headers=headers).status_code == 200
    wait_until(lambda: count(ch, "events", fresh_project.project_id) >= 2,
               message="the clicks landed")
    wait_until(lambda: buffered(redis_client) == 0 and not int(
        redis_client.get(Keys.inflight) or 0), message="every accepted row landed")
    rows = ch.query("select id, created_at from trackhouse.events where project_id = {p:String} "
                    "order by created_at", parameters={"p": fresh_project.project_id}
                    ).result_rows
    assert len(rows) == 2 and rows[0][0] != rows[1][0]
    assert (rows[1][1] - rows[0][1]).total_seconds() >= 2


def test_a_referrer_on_the_requests_own_site_is_internal_without_a_path(api, worker, ch
                                                                         ) -> None:
    """An event that names no page (@openpanel/web's link_out: no __path, the page's
    document.referrer as __referrer) is on the site of its request's Origin: a referrer
    there is internal, not a source; another site's still is one."""
    origin = "http://127.0.0.1:8765"
    project = make_project(origin=origin)
    headers = {"openpanel-client-id": project.browser_client, "origin": origin,
               "user-agent": UA_IPHONE, "openpanel-sdk-name": "web"}

    def link_out(referrer: str) -> dict:
        return {"type": "track", "payload": {"name": "link_out", "properties": {
            "__referrer": referrer, "href": "https://partner.example/"}}}

    for referrer in (f"{origin}/page", "https://news.example.org/story"):
        answer = api.post("/track", json=link_out(referrer), headers=headers)
        assert answer.status_code == 200, answer.text
    wait_until(lambda: count(ch, "events", project.project_id) == 2, message="rows landed")
    rows = ch.query("select referrer, referrer_name, referrer_type from trackhouse.events "
                    "where project_id = {p:String} order by referrer",
                    parameters={"p": project.project_id}).result_rows
    assert rows == [(f"{origin}/page", "", "internal"),
                    ("https://news.example.org/story", "news.example.org", "referral")]


def test_import_drops_duplicates_between_kept_rows_intact(api, worker, fresh_project: TestProject,
                                                         ch) -> None:
    """Imports travel to Redis as one blob per table; duplicates anywhere in it (already seen,
    or repeated inside the batch) are cut out and every kept row lands whole and unshifted."""
    project = fresh_project
    headers = project.server_headers()

    def event(n: int) -> dict:
        return {"type": "track", "payload": {"name": "imported", "properties": {
            "__eventId": f"imp-{n}", "__timestamp": f"2026-01-0{1 + n % 5}T00:00:00Z",
            "n": str(n), "pad": "x" * (n * 7 % 40)}}}

    first = [event(n) for n in (2, 5, 6)]
    assert api.post("/track/batch?import=true", json=first,
                    headers=headers).json()["accepted"] == 3
    identify = {"type": "identify", "payload": {"profileId": "imp-user", "firstName": "Ida"}}
    second = [event(n) for n in range(8)] + [event(3), identify, event(9)]
    body = api.post("/track/batch?import=true", json=second, headers=headers).json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["accepted", "accepted", "duplicate", "accepted", "accepted",
                        "duplicate", "duplicate", "accepted", "duplicate", "accepted",
                        "accepted"]
    wait_until(lambda: count(ch, "events", project.project_id) == 9
               and count(ch, "profiles", project.project_id) == 1, message="import landed")
    rows = ch.query("select properties['n'], properties['pad'], toString(created_at) "
                    "from trackhouse.events where project_id = {p:String}",
                    parameters={"p": project.project_id}).result_rows
    expected = {(str(n), "x" * (n * 7 % 40), f"2026-01-0{1 + n % 5} 00:00:00.000")
                for n in (*range(8), 9)}
    assert len(rows) == 9 and set(rows) == expected


def _private_accept(redis_client, backlog_limit: int = 1_000_000):
    """The accept script on buffer keys of its own, a dedup window of its own and a project
    of its own: (call(requests) -> answers, buffer keys, window). The buffer keys are laid
    out as ``buffer.BUFFER_KEYS``: per lane (1 live events, 2 profiles, 3 imports) its buffer
    (keys[0..2]), then its chunk-row list (keys[3..5]), its row counter (keys[6..8]), then
    the inflight counter."""
    from datetime import date

    from collector.buffer import ACCEPT, AcceptLimits, AcceptRequest, accept_call

    prefix = f"test-accept-{uuid.uuid4().hex}"
    buffer_keys = tuple(f"{prefix}:{name}" for name in (
        "buf1", "buf2", "buf3", "bufn1", "bufn2", "bufn3", "rows1", "rows2", "rows3", "inflight"))
    window = uuid.uuid4().int % 10**12 + 10**12
    accept = redis_client.register_script(ACCEPT)
    limits = AcceptLimits(backlog_limit=backlog_limit, session_idle_ms=1_800_000,
                          event_ids_ttl_s=60, request_window_ms=10_000)

    def request(rows: list[bytes] = (), live: list[tuple[str, int, bytes]] = (),
                counters: tuple[tuple[str, int, int], ...] = ()) -> AcceptRequest:
        """Blob rows (each standing for its own event id) and live rows (device, time, row,
        whose id is the row itself), charged one hit on each counter."""
        tokens = [*rows, *(row for _, _, row in live)]
        return AcceptRequest(
            project=prefix, day=date(2026, 11, 27), limits=counters,
            events_blob=b"\n".join(rows), profiles_blob=b"",
            layout=b"e" * len(rows) + b"L" * len(live), tokens=b"\0".join(tokens),
            live_rows=[(b"%s\0\0%d" % (device.encode(), ms), row[:-1])
                       for device, ms, row in live])

    def call(*requests: AcceptRequest) -> list:
        keys, args = accept_call(list(requests), window, limits, buffer_keys)
        return accept(keys=keys, args=args)

    return call, request, buffer_keys, window


def test_accept_cuts_the_blob_exactly_around_duplicates(redis_client) -> None:
    """The accept script's chunk is exactly the new rows joined by newlines (the worker
    counts rows by newlines), whichever rows of the blob were duplicates."""
    from collector.buffer import Keys

    call, request, keys, window = _private_accept(redis_client)
    rows = [b'{"n":%d,"pad":"%s"}' % (n, b"x" * n) for n in range(6)]
    assert call(request([rows[1], rows[4]])) == [[b"11"]]
    assert call(request(rows + [rows[5]])) == [[b"1011010"]]
    # blob rows are imports: they wait in the imports lane
    chunks = redis_client.lrange(keys[2], 0, -1)
    assert chunks == [rows[1] + b"\n" + rows[4], b"\n".join([rows[0], rows[2], rows[3], rows[5]])]
    assert redis_client.lrange(keys[5], 0, -1) == [b"2", b"4"]
    assert redis_client.get(keys[8]) == b"6"
    assert redis_client.llen(keys[0]) == 0 and redis_client.get(keys[6]) is None
    # the ids are remembered in the window's set, with an expiry; the previous window's set
    # counts too
    ids_now, ids_before = Keys.seen_ids(window), Keys.seen_ids(window - 1)
    assert redis_client.smembers(ids_now) == set(rows) and redis_client.ttl(ids_now) > 0
    redis_client.rename(ids_now, ids_before)
    assert call(request([rows[0], b'{"n":99}'])) == [[b"01"]]
    redis_client.delete(ids_before, Keys.seen_ids(window))


def test_accept_takes_a_group_of_requests_each_as_if_alone(redis_client) -> None:
    """One call for several requests: each is counted against its rate limits and the
    backlog in order, sees the ids and sessions of the requests before it, and the
    admitted ones' new rows land as one chunk per lane."""
    from collector.buffer import Keys

    call, request, keys, window = _private_accept(redis_client, backlog_limit=4)
    counter = f"{keys[0]}:limit"
    limit = ((counter, 30, 3),)  # 3 hits allowed per 30 s window
    start = 1_700_000_000_000
    answers = call(
        request([b'{"a":1}'], counters=limit),
        # a duplicate of the first request's row, and a live row
        request([b'{"a":1}', b'{"a":2}'], live=[("dev", start, b'{"v":1}')], counters=limit),
        # the same device a minute later: the same session; then the backlog (4 rows) is full
        request(live=[("dev", start + 60_000, b'{"v":2}')], counters=limit),
        request([b'{"a":3}'], counters=limit),  # over the rate limit (4th hit)
        request([b'{"a":5}']),  # past the backlog bound
    )
    assert answers[0] == [b"1"]
    flags, device, session = answers[1]
    assert (flags, device) == (b"011", b"dev")
    assert answers[2] == [b"1", b"dev", session]
    assert answers[3:] == [[-2, 1], [-1]]
    assert int(redis_client.get(counter)) == 4 and redis_client.ttl(counter) > 0
    # the backlog bound: 4 rows buffered, the next request is refused whole
    assert call(request([b'{"a":4}'])) == [[-1]]
    # the imported rows are one chunk of the imports lane, the live rows one of the live lane
    assert redis_client.lrange(keys[2], 0, -1) == [b'{"a":1}\n{"a":2}']
    assert redis_client.lrange(keys[5], 0, -1) == [b"2"]
    live = redis_client.lrange(keys[0], 0, -1)
    assert len(live) == 1 and redis_client.lrange(keys[3], 0, -1) == [b"2"]
    assert live[0].split(b"\n") == [
        b'{"v":%d,"device_id":"dev","session_id":"%s"}' % (n, session) for n in (1, 2)]
    sessions = redis_client.hgetall(Keys.sessions(keys[0].rsplit(":", 1)[0],
                                                  __import__("datetime").date(2026, 11, 27)))
    assert sessions == {b"dev": b"%d:%d" % (start, start + 60_000)}
    redis_client.delete(counter, Keys.seen_ids(window))


def test_claim_takes_whole_chunks_up_to_the_batch_size(redis_client) -> None:
    """Each request's rows are one chunk; a batch takes whole chunks (at least one) while they
    fit in the batch size, and the row counters follow."""
    from collector.buffer import CLAIM

    prefix = f"test-claim-{uuid.uuid4().hex}"
    buffer, counts, rows, pending, inflight = (f"{prefix}:{name}" for name in (
        "buf", "bufn", "bufrows", "pending", "inflight"))
    for chunk in ([b"1", b"2", b"3"], [b"4", b"5", b"6", b"7"], [b"8"] * 9):
        redis_client.rpush(buffer, b"\n".join(chunk))
        redis_client.rpush(counts, len(chunk))
        redis_client.incrby(rows, len(chunk))
    claim = redis_client.register_script(CLAIM)
    answers = []
    for n in range(4):
        batch = f"{prefix}:batch{n}"
        answers.append(claim(keys=[buffer, pending, inflight, batch, counts, rows],
                             args=[f"b{n}", 5, 10, 0])
                       + [b"\n".join(redis_client.lrange(batch, 0, -1)) or None])
    # 3 rows (the next chunk would pass 5), 4 rows, then the 9-row chunk alone, then nothing
    assert answers == [[3, 13, b"1\n2\n3"], [4, 9, b"4\n5\n6\n7"],
                       [9, 0, b"\n".join([b"8"] * 9)], [0, 0, None]]
    assert int(redis_client.get(inflight)) == 16 and redis_client.zcard(pending) == 3
    assert redis_client.llen(buffer) == redis_client.llen(counts) == 0
    redis_client.delete(pending, inflight, rows)


def test_a_batch_landed_twice_is_stored_once(fresh_project: TestProject, ch, redis_client,
                                             migrated) -> None:
    """A retried insert after a lost acknowledgement: same deduplication token, one copy."""
    from collector.worker import Lander
    from trackhouse.settings import get_settings

    rows = b"\n".join(raw_rows(fresh_project.project_id, "x", 50))
    lander = Lander(get_settings(), redis_client)
    token = uuid.uuid4().hex
    lander._insert("events", rows, token)
    lander._insert("events", rows, token)
    assert count(ch, "events", fresh_project.project_id) == 50


def test_rejected_rows_go_to_dead_letters_and_the_rest_lands(fresh_project: TestProject, ch,
                                                              redis_client, migrated) -> None:
    import orjson

    from collector.buffer import Keys
    from collector.worker import Lander
    from trackhouse.settings import get_settings

    good = raw_rows(fresh_project.project_id, "ok", 9)
    bad = b'{"id": "not-a-uuid", "project_id": "%s", "name": "bad"}' % (
        fresh_project.project_id.encode())
    batch_id = uuid.uuid4().hex
    redis_client.rpush(Keys.batch(batch_id), b"\n".join(good[:4]), b"\n".join([bad, *good[4:]]))
    redis_client.delete(Keys.dead_letter("events"))
    assert Lander(get_settings(), redis_client).land("events", batch_id) == "landed"
    assert count(ch, "events", fresh_project.project_id) == 9
    (entry,) = [orjson.loads(e) for e in redis_client.lrange(Keys.dead_letter("events"), 0, -1)]
    assert "not-a-uuid" in entry["row"] and "UUID" in entry["reason"]
    assert not redis_client.exists(Keys.batch(batch_id))


def test_concurrent_increments_are_exact(api, worker, fresh_project: TestProject, ch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    headers = fresh_project.server_headers()

    def increment(n: int) -> int:
        kind = "decrement" if n % 5 == 0 else "increment"
        return api.post("/track", json={"type": kind, "payload": {
            "profileId": "u-9", "property": "credits", "value": n,
            "properties": {"__eventId": f"inc-{n}"}}}, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(increment, range(1, 41))) == {200}
    expected = sum(-n if n % 5 == 0 else n for n in range(1, 41))
    wait_until(lambda: count(ch, "profiles", fresh_project.project_id) == 40,
               message="all increments landed")
    total = ch.query("select sum(delta) from trackhouse.profiles where project_id = {p:String} "
                     "and profile_id = 'u-9' and property = 'credits'",
                     parameters={"p": fresh_project.project_id}).result_rows[0][0]
    assert total == expected


def test_deadletters_command_lists_rejected_rows(redis_client) -> None:
    import orjson
    from typer.testing import CliRunner

    from collector.buffer import Keys
    from trackhouse.cli import app

    redis_client.rpush(Keys.dead_letter("profiles"), orjson.dumps({
        "table": "profiles", "batch": "b-1", "reason": "Code: 376. Cannot parse uuid",
        "at": "2026-11-27T10:00:00+00:00", "row": '{"id": "nope"}'}))
    try:
        result = CliRunner().invoke(app, ["deadletters", "--limit", "5"])
        assert result.exit_code == 0, result.output
        assert "profiles: 1 rejected rows" in result.output
        assert "Cannot parse uuid" in result.output and '{"id": "nope"}' in result.output
    finally:
        redis_client.delete(Keys.dead_letter("profiles"))


def test_worker_burst_lands_the_buffer_and_exits(api, fresh_project: TestProject, ch,
                                                 migrated) -> None:
    import subprocess
    import sys
    from pathlib import Path

    items = [{"type": "track", "payload": {"name": "burst", "properties": {
        "__eventId": f"burst-{n}"}}} for n in range(120)]
    assert api.post("/track/batch", json=items, headers=fresh_project.browser_headers()
                    ).json()["accepted"] == 120
    done = subprocess.run([str(Path(sys.executable).parent / "trackhouse"), "worker", "--burst"],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert count(ch, "events", fresh_project.project_id) == 120


def test_a_busy_table_flushes_less_often(redis_client) -> None:
    """Quiet tables flush every worker_flush_interval_ms; from worker_busy_rows_per_s on,
    every worker_busy_flush_interval_ms (fewer, larger inserts), until the rate halves."""
    from rq import Queue

    from collector.worker import Flusher
    from trackhouse.settings import get_settings

    settings = get_settings().model_copy(update={
        "worker_flush_interval_ms": 250, "worker_busy_flush_interval_ms": 1000,
        "worker_busy_rows_per_s": 4000})
    flusher = Flusher(settings, redis_client, Queue("test-flusher", connection=redis_client))
    assert flusher.interval == {"events": 0.25, "profiles": 0.25, "imports": 0.25}
    quiet, busy = 0.25, 1.0
    assert flusher.next_interval(claimed=999, waited=0.25, current=quiet) == quiet  # 3,996/s
    assert flusher.next_interval(claimed=1000, waited=0.25, current=quiet) == busy
    assert flusher.next_interval(claimed=4000, waited=1.0, current=busy) == busy
    # once busy, it stays so down to half the rate (no flapping around the threshold)
    assert flusher.next_interval(claimed=3000, waited=1.0, current=busy) == busy
    assert flusher.next_interval(claimed=2000, waited=1.0, current=busy) == busy
    assert flusher.next_interval(claimed=1999, waited=1.0, current=busy) == quiet
    assert flusher.next_interval(claimed=3000, waited=1.0, current=quiet) == quiet
    # a first flush after a long quiet spell is measured over at most the busy interval
    assert flusher.next_interval(claimed=5000, waited=3600.0, current=quiet) == busy
    assert flusher.next_interval(claimed=20, waited=3600.0, current=quiet) == quiet


def test_live_events_land_while_an_import_is_landing(api, worker, fresh_project: TestProject,
                                                     ch, redis_client) -> None:
    """Imports have their own lane and queue: while the worker's main loop is busy with an
    import job (here one that takes 8 s), a live event still lands, by the live loop."""
    import time

    from rq import Queue

    from collector.worker import IMPORTS_QUEUE_NAME

    slow_import = Queue(IMPORTS_QUEUE_NAME, connection=redis_client).enqueue(time.sleep, 8)
    wait_until(lambda: slow_import.get_status(refresh=True) == "started",
               message="the slow import job running")
    sent = time.monotonic()
    answer = api.post("/track", json={"type": "track", "payload": {"name": "live_now"}},
                      headers=fresh_project.browser_headers())
    assert answer.status_code == 200, answer.text
    wait_until(lambda: count(ch, "events", fresh_project.project_id) == 1, timeout_s=7,
               message="the live event landed")
    assert time.monotonic() - sent < 7
    assert slow_import.get_status(refresh=True) == "started"  # the import is still landing

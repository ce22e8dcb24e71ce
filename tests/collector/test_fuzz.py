"""Fuzzing the collector's public endpoints with Hypothesis: /track, /track/batch (JSON and
NDJSON, live and import), Plausible's /api/event, Umami's /api/send and /tracker.js, each with
at least 1,000 generated requests against the real app in-process (real Redis, metadata
database, warehouse and worker). Every answer is 2xx, or a 4xx whose JSON error says what is
wrong; never 5xx. Afterwards the collector is still ready and a valid event still lands.

The strategies lean on what broke before: properties nested hundreds of levels deep, tens of
thousands of nested keys, calendar-edge timestamps with offsets, numbers past Int64, control
characters and overlong keys, wrong types everywhere, unreadable URLs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path

import orjson
import pytest
from collector_support import (
    ORIGIN,
    TestProject,
    make_client,
    make_project,
    start_worker,
    wait_until,
)
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REQUESTS_PER_ENDPOINT = 1_000
FUZZ = settings(max_examples=REQUESTS_PER_ENDPOINT, deadline=None, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)


# --------------------------------------------------------------------------------------
# JSON with hostile parts, rendered as text (orjson stops at 255 levels and 64-bit ints)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deep:
    """Objects (or arrays) nested ``levels`` deep around a leaf."""

    levels: int
    array: bool


@dataclass(frozen=True)
class Wide:
    """One object holding ``keys`` keys, under ``under`` (nested) or flat."""

    keys: int
    under: bool


@dataclass(frozen=True)
class RawNumber:
    """A number text orjson cannot read (the whole body is then malformed)."""

    text: str


def encode(value: object) -> bytes:
    if isinstance(value, Deep):
        if value.array:
            return b"[" * value.levels + b"1" + b"]" * value.levels
        return b'{"k":' * value.levels + b'"leaf"' + b"}" * value.levels
    if isinstance(value, Wide):
        inner = b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(value.keys)) + b"}"
        return b'{"a":' + inner + b"}" if value.under else inner
    if isinstance(value, RawNumber):
        return value.text.encode()
    if isinstance(value, dict):
        return b"{" + b",".join(orjson.dumps(str(key)) + b":" + encode(inner)
                                for key, inner in value.items()) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(encode(inner) for inner in value) + b"]"
    if type(value) is int:
        return str(value).encode()  # past 64 bits too: JSON numbers have no size
    return orjson.dumps(value)  # (nan and infinities become null)


HOSTILE_NUMBERS = st.sampled_from([
    0, 1, -1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64,
    10**23, 1e29, -1e29, 1.5, 0.1, -0.0, 1e308, 5e-324, 4900.0, 253402300800000,
    -62135596800001, 10**30,
])
HOSTILE_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x01b", "\x7f", "\u0085", "\u2028", "x" * 8_001, "y" * 201,
    "99999999999999999999999", "1e29", "19.99", "-0", "NaN", "inf", "1" * 5_000,
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "http://[::1", "[", "💥",
    "<script>alert(1)</script>", "../../etc/passwd", "Robert'); DROP TABLE events;--",
    "screen_view", "session_start",
])
TIMESTAMPS = st.one_of(
    st.sampled_from([
        "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z", "1999-12-31T23:59:59.999Z", "2000-01-01T00:00:00Z",
        "2026-13-45T99:99:99Z", "2026-01-01T00:00:00+25:00", "", "now", 0, -1, 2**63 - 1,
        -(2**63), 1e29, 253402300800000, -62135596800001, True, None, [], {},
    ]),
    st.builds(lambda moment, minutes: moment.replace(
        tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
        st.datetimes(), st.integers(-1439, 1439)),
    st.integers(), st.floats(), st.text(max_size=30),
)
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
                   HOSTILE_NUMBERS, HOSTILE_TEXT)
RESERVED = ["__revenue", "__timestamp", "__eventId", "__deviceId", "__ip", "__userAgent",
            "__path", "__referrer", "__title", "__duration", "__query", "__hash", "__os",
            "__browser", "__device", "__country", "__language", "__screen"]
KEYS = st.one_of(st.text(max_size=12), st.sampled_from(
    ["", "x" * 201, "a\x00", "b\x1f", "c\x9f", "a.b", "$type", *RESERVED]))
JSON = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)
NESTING = st.builds(Deep, st.sampled_from([7, 8, 9, 10, 31, 32, 33, 253, 254, 300, 980, 1000,
                                           1019, 1030]), st.booleans())
HOSTILE_JSON = st.one_of(JSON, NESTING, HOSTILE_NUMBERS, HOSTILE_TEXT)
PROPERTIES = st.one_of(
    st.dictionaries(KEYS, HOSTILE_JSON, max_size=6),
    st.fixed_dictionaries({}, optional={key: st.one_of(
        TIMESTAMPS if key == "__timestamp" else HOSTILE_JSON, HOSTILE_NUMBERS)
        for key in RESERVED}),
    st.builds(lambda extra, deep: {**extra, "nested": deep},
              st.dictionaries(KEYS, LEAVES, max_size=3), NESTING),
    st.builds(Wide, st.sampled_from([199, 200, 201, 10_000]), st.booleans()),
    HOSTILE_JSON,  # not an object at all
)
URLS = st.one_of(st.sampled_from([
    f"{ORIGIN}/", f"{ORIGIN}/p?utm_source=x&utm_campaign=%zz#h", "http://[::1/x", "http://[",
    "//", "", "javascript:alert(1)", "http://a:99999/", "http://u:p@h/", "h" * 3_000,
    "https://www.google.com/search?q=x", "/relative", "android-app://com.google",
]), st.text(max_size=40))
NAMES = st.one_of(st.sampled_from(["screen_view", "purchase", "pageview", "engagement",
                                   "session_start", " pad ", "", "x" * 201, "a\x00b"]),
                  st.text(max_size=20), HOSTILE_JSON)


def payload(required: dict, optional: dict) -> st.SearchStrategy:
    # each field is sometimes of the wrong type
    return st.fixed_dictionaries(
        {key: st.one_of(value, HOSTILE_JSON) for key, value in required.items()},
        optional={key: st.one_of(value, HOSTILE_JSON) for key, value in optional.items()})


PROFILE_ID = st.one_of(st.text(max_size=20), st.integers(), HOSTILE_JSON)
MESSAGE_PAYLOADS = {
    "track": payload({"name": NAMES}, {"properties": PROPERTIES, "profileId": PROFILE_ID,
                                       "groups": st.lists(st.text(max_size=5), max_size=3)}),
    "identify": payload({"profileId": PROFILE_ID}, {
        "firstName": st.text(max_size=10), "email": st.sampled_from(["a@b.co", "bad"]),
        "avatar": URLS, "properties": PROPERTIES}),
    "increment": payload({"profileId": PROFILE_ID, "property": KEYS},
                         {"value": HOSTILE_NUMBERS, "properties": PROPERTIES}),
    "decrement": payload({"profileId": PROFILE_ID, "property": KEYS},
                         {"value": HOSTILE_NUMBERS}),
    "group": payload({"id": st.text(max_size=10)}, {"type": st.text(max_size=5),
                                                    "properties": PROPERTIES}),
    "assign_group": payload({}, {"groupIds": st.lists(st.text(max_size=5), max_size=3),
                                 "profileId": PROFILE_ID}),
}
MESSAGES = st.one_of(
    *(st.fixed_dictionaries({"type": st.just(kind), "payload": body},
                            optional={"clientId": HOSTILE_JSON, "extra": HOSTILE_JSON})
      for kind, body in MESSAGE_PAYLOADS.items()),
    st.fixed_dictionaries({"type": st.one_of(st.sampled_from(["alias", "TRACK"]), JSON),
                           "payload": HOSTILE_JSON}),
    HOSTILE_JSON,
)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
EXTRA_HEADERS = st.fixed_dictionaries({}, optional={
    "x-forwarded-for": st.one_of(HEADER_TEXT, st.just("1.2.3.4, [::1, 300.1.1.1")),
    "openpanel-client-ip": HEADER_TEXT, "user-agent": HEADER_TEXT,
    "openpanel-sdk-name": HEADER_TEXT, "openpanel-sdk-version": HEADER_TEXT,
    "openpanel-client-id": st.one_of(HEADER_TEXT, st.just(str(uuid.uuid4()))),
})


# --------------------------------------------------------------------------------------
# the collector under fuzzing
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(redis_server) -> TestProject:
    return make_project(trackers=True)


@pytest.fixture(scope="module")
def collector(redis_server, migrated) -> Iterator[TestClient]:
    # rate limits off: a 429 would answer in place of the code path under test
    with make_client(collector_rate_limit_client="", collector_rate_limit_ip="") as client:
        yield client


@pytest.fixture(scope="module")
def worker_process(redis_server, migrated, tmp_path_factory) -> Iterator[None]:
    running = start_worker(Path(tmp_path_factory.mktemp("fuzz")) / "worker.log")
    yield
    running.stop()


@pytest.fixture
def check(collector: TestClient, project: TestProject, worker_process, ch
          ) -> Iterator[Callable[..., object]]:
    """``check(method, path, **request)``: sends one request and asserts its answer; after
    the test, asserts that the collector is still ready and that a valid event lands."""
    calls = []

    def send(method: str, path: str, **request: object) -> object:
        answer = collector.request(method, path, **request)
        calls.append(answer.status_code)
        assert answer.status_code < 500, (path, str(request)[:1_000], answer.text[:500])
        if answer.status_code >= 400:
            error = answer.json()["error"]
            assert isinstance(error, str) and error, answer.text
        return answer

    yield send
    assert len(calls) >= REQUESTS_PER_ENDPOINT
    assert collector.get("/health").status_code == 200
    ready = collector.get("/ready")
    assert ready.status_code == 200, ready.text
    name = f"after-fuzz-{uuid.uuid4().hex[:8]}"
    answer = collector.post("/track", json={"type": "track", "payload": {"name": name}},
                            headers=project.browser_headers())
    assert answer.status_code == 200, answer.text
    wait_until(lambda: ch.query(
        "select count() from trackhouse.events where project_id = {p:String} and name = "
        "{n:String}", parameters={"p": project.project_id, "n": name}).result_rows[0][0] == 1,
        message="a valid event landed after the fuzzing")


def test_fuzz_track(check, project: TestProject) -> None:
    @FUZZ
    @given(MESSAGES, EXTRA_HEADERS)
    def run(message, headers) -> None:
        check("POST", "/track", content=encode(message),
              headers={**project.browser_headers(), **headers,
                       "content-type": "application/json"})

    run()


def test_fuzz_track_batch(check, project: TestProject) -> None:
    @FUZZ
    @given(st.lists(MESSAGES, min_size=0, max_size=6), st.sampled_from(["json", "ndjson"]),
           st.booleans(), st.one_of(st.none(), st.binary(max_size=40)), EXTRA_HEADERS)
    def run(messages, shape, importing, garbage, headers) -> None:
        lines = [encode(message) for message in messages]
        if garbage is not None:  # a malformed body: the whole batch is refused
            lines.insert(len(lines) // 2, garbage)
        body = b"[" + b",".join(lines) + b"]" if shape == "json" else b"\n".join(lines)
        base = project.server_headers() if importing else project.browser_headers()
        answer = check("POST", "/track/batch?import=true" if importing else "/track/batch",
                       content=body, headers={**base, **headers})
        if answer.status_code == 200:
            result = answer.json()
            assert result["accepted"] + result["duplicates"] + result["errors"] == len(
                result["results"])
            assert all(item["status"] != "error" or item["error"] for item in result["results"])

    run()


def test_fuzz_plausible(check, project: TestProject) -> None:
    revenue = st.one_of(st.fixed_dictionaries({"amount": st.one_of(
        HOSTILE_NUMBERS, HOSTILE_TEXT, LEAVES), "currency": st.one_of(HOSTILE_TEXT, JSON)}),
        HOSTILE_JSON)
    props = st.one_of(PROPERTIES, PROPERTIES.map(lambda p: encode(p).decode()))
    event = st.fixed_dictionaries({
        "n": NAMES, "u": URLS,
        "d": st.one_of(st.just(project.plausible_domain), st.text(max_size=20),
                       st.just(f"nope.test,{project.plausible_domain}"), HOSTILE_JSON),
    }, optional={"r": st.one_of(URLS, st.none()), "p": props, "$": revenue,
                 "h": HOSTILE_JSON, "v": HOSTILE_JSON})

    @FUZZ
    @given(st.one_of(event, HOSTILE_JSON), st.one_of(st.none(), st.binary(max_size=30)))
    def run(body, garbage) -> None:
        content = garbage if garbage is not None else encode(body)
        check("POST", "/api/event", content=content,
              headers={"origin": ORIGIN, "content-type": "text/plain"})

    run()


def test_fuzz_umami(check, project: TestProject) -> None:
    umami_payload = st.fixed_dictionaries({
        "website": st.one_of(st.just(project.umami_website_id), st.text(max_size=10),
                             HOSTILE_JSON),
    }, optional={"url": URLS, "hostname": st.one_of(st.text(max_size=20),
                                                   st.sampled_from(["[::1", "a:b", ""])),
                 "referrer": URLS, "title": st.text(max_size=20), "language": HOSTILE_TEXT,
                 "screen": st.text(max_size=10), "name": NAMES, "data": PROPERTIES,
                 "id": PROFILE_ID})
    body = st.fixed_dictionaries({"type": st.one_of(
        st.sampled_from(["event", "identify", "other"]), HOSTILE_JSON)},
        optional={"payload": st.one_of(umami_payload, HOSTILE_JSON)})

    @FUZZ
    @given(st.one_of(body, HOSTILE_JSON), st.sampled_from([ORIGIN, "http://[bad", "null"]))
    def run(request, origin) -> None:
        check("POST", "/api/send", content=encode(request),
              headers={"origin": origin, "content-type": "application/json"})

    run()


def test_fuzz_tracker_script(check) -> None:
    @FUZZ
    @given(st.sampled_from(["/tracker.js", "/op1.js"]), HEADER_TEXT, st.fixed_dictionaries(
        {}, optional={"accept-encoding": st.one_of(HEADER_TEXT, st.just("gzip;q=0, br")),
                      "if-none-match": HEADER_TEXT, "range": HEADER_TEXT}))
    def run(path, query, headers) -> None:
        answer = check("GET", path, params={"q": query}, headers=headers)
        assert answer.status_code in (200, 304)

    run()

"""The collector's client-facing endpoints over HTTP: /tracker.js (size budget, build in step
with its source, caching), and the Plausible and Umami endpoints' edge cases (the happy
paths run in a real browser in test_browser_clients.py)."""

from __future__ import annotations

import gzip
import subprocess
import uuid

import httpx
import pytest
from clients_support import DESKTOP_CHROME_UA, Stack, make_client_project, wait_for_rows
from npm_clients import JS_DIR, NpmClients
from test_browser_clients import EVENTS_SQL, PROFILES_SQL

from trackhouse.settings import PROJECT_ROOT

TRACKER_DIR = PROJECT_ROOT / "sdk" / "tracker"
SITE = "https://shop.example"


def test_tracker_build_is_in_step_with_its_source_and_within_budget(
    npm_clients: NpmClients, tmp_path
) -> None:
    """dist/tracker.min.js is what `npm run build` in sdk/tracker makes of tracker.js (same
    esbuild version and flags), and stays within 3 KB gzipped."""
    import json

    build = json.loads((TRACKER_DIR / "package.json").read_text())["scripts"]["build"]
    args = build.split()[1:]  # "esbuild tracker.js --minify ... --outfile=dist/tracker.min.js"
    out = tmp_path / "tracker.min.js"
    args = [a if not a.startswith("--outfile=") else f"--outfile={out}" for a in args]
    subprocess.run([str(JS_DIR / "node_modules" / ".bin" / "esbuild"), *args, "--log-level=error"],
                   cwd=TRACKER_DIR, check=True, timeout=60)
    committed = (TRACKER_DIR / "dist" / "tracker.min.js").read_bytes()
    assert out.read_bytes() == committed, "run `npm run build` in sdk/tracker and commit dist/"
    assert len(gzip.compress(committed, 9)) <= 3 * 1024


def test_tracker_js_is_served_with_caching_headers(stack: Stack) -> None:
    committed = (TRACKER_DIR / "dist" / "tracker.min.js").read_bytes()
    with httpx.Client(base_url=stack.url) as http:
        plain = http.get("/tracker.js", headers={"accept-encoding": "identity"})
        assert plain.status_code == 200 and plain.content == committed
        assert plain.headers["content-type"].startswith("application/javascript")
        assert "max-age=3600" in plain.headers["cache-control"]
        etag = plain.headers["etag"]
        zipped = http.get("/tracker.js", headers={"accept-encoding": "gzip, br"})
        assert zipped.headers["content-encoding"] == "gzip" and zipped.content == committed
        assert int(zipped.headers["content-length"]) < len(committed)
        again = http.get("/tracker.js", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        assert http.get("/op1.js").content == committed  # OpenPanel's script name


@pytest.fixture
def compat_project(stack: Stack):
    return make_client_project(SITE, "compat")


def _plausible(stack: Stack, body: dict | str, origin: str = SITE) -> httpx.Response:
    content = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content
    return httpx.post(f"{stack.url}/api/event", content=content, headers={
        "content-type": "text/plain", "origin": origin, "user-agent": DESKTOP_CHROME_UA})


def _umami(stack: Stack, body: dict, origin: str = SITE) -> httpx.Response:
    return httpx.post(f"{stack.url}/api/send", json=body, headers={
        "origin": origin, "user-agent": DESKTOP_CHROME_UA, "x-umami-cache": "abc"})


def test_plausible_endpoint(stack: Stack, compat_project) -> None:
    domain = compat_project.plausible_domain
    page = f"{SITE}/blog/post?utm_source=hn"
    # a page view with long field names, several domains (the first known one wins), revenue
    answer = _plausible(stack, {"name": "pageview", "url": page, "domain": f"nope.test,{domain}",
                                "referrer": "https://news.ycombinator.com/"})
    assert answer.status_code == 202 and answer.text == "ok"
    assert answer.headers["access-control-allow-origin"] == SITE
    # a custom event with props as a JSON string (older trackers) and revenue
    assert _plausible(stack, {"n": "Purchase", "u": page, "d": domain, "r": None,
                              "p": '{"plan": "pro"}',
                              "$": {"amount": "10.29", "currency": "EUR"}}).status_code == 202
    # engagement heartbeats are not events
    assert _plausible(stack, {"n": "engagement", "u": page, "d": domain, "sd": 40,
                              "e": 1500}).status_code == 202
    rows = wait_for_rows(EVENTS_SQL, {"project": compat_project.project_id}, 2)
    assert [r["name"] for r in rows] == ["screen_view", "Purchase"]
    view, purchase = rows
    assert (view["path"], view["utm_source"], view["referrer_name"]) == (
        "/blog/post", "hn", "Hacker News")
    assert purchase["properties"] == {"plan": "pro", "currency": "EUR"}
    assert purchase["sdk_name"] == "plausible"


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"n": "pageview", "u": "https://a.example/", "d": "unknown.example"}, 404, "no project"),
    ({"n": "pageview", "d": "x.example"}, 400, "u"),
    ("{not json", 400, "invalid JSON"),
    ([1, 2], 400, "JSON object"),
])
def test_plausible_endpoint_refuses_bad_requests(
    stack: Stack, body: object, status: int, message: str
) -> None:
    answer = _plausible(stack, body if isinstance(body, str | dict) else str(body))
    assert answer.status_code == status
    assert message in answer.json()["error"]


def test_compat_endpoints_check_the_projects_origins(stack: Stack, compat_project) -> None:
    body = {"n": "pageview", "u": f"{SITE}/", "d": compat_project.plausible_domain}
    refused = _plausible(stack, body, origin="https://evil.example")
    assert refused.status_code == 403 and "not allowed" in refused.json()["error"]
    refused = _umami(stack, {"type": "event", "payload": {
        "website": compat_project.umami_website_id, "url": "/"}}, origin="https://evil.example")
    assert refused.status_code == 403
    preflight = httpx.options(f"{stack.url}/api/send", headers={
        "origin": SITE, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-umami-cache"})
    assert preflight.status_code == 204
    assert "x-umami-cache" in preflight.headers["access-control-allow-headers"]


def test_umami_endpoint(stack: Stack, compat_project) -> None:
    website = compat_project.umami_website_id
    base = {"website": website, "hostname": "shop.example", "language": "de-DE",
            "screen": "1920x1080", "referrer": "", "title": "Caf%C3%A9%20menu"}
    first = _umami(stack, {"type": "event", "payload": {**base, "url": "/menu?utm_source=x"}})
    assert first.status_code == 200
    answer = first.json()
    assert set(answer) == {"cache", "sessionId", "visitId"}
    assert uuid.UUID(answer["sessionId"]) and uuid.UUID(answer["visitId"])
    event = _umami(stack, {"type": "event", "payload": {
        **base, "url": "/menu", "referrer": "/", "name": "order", "data": {"dish": "soup"}}})
    assert event.json()["sessionId"] == answer["sessionId"]  # same visitor, same session
    identify = _umami(stack, {"type": "identify", "payload": {
        **base, "url": "/menu", "id": f"guest-{website[:8]}", "data": {"table": 4}}})
    assert identify.status_code == 200
    no_id = _umami(stack, {"type": "identify", "payload": {**base, "data": {"table": 4}}})
    assert no_id.status_code == 400 and "distinct id" in no_id.json()["error"]
    unknown = _umami(stack, {"type": "event", "payload": {**base, "website": str(uuid.uuid4())}})
    assert unknown.status_code == 404

    rows = wait_for_rows(EVENTS_SQL, {"project": compat_project.project_id}, 2)
    assert [r["name"] for r in rows] == ["screen_view", "order"]
    view, order = rows
    assert (view["path"], view["query"], view["title"], view["utm_source"]) == (
        "/menu", "utm_source=x", "Café menu", "x")
    assert order["properties"] == {"dish": "soup"}
    # the tracker sends the previous SPA path as the referrer: resolved on the page's origin
    assert order["referrer"] == f"{SITE}/" and order["referrer_type"] == "internal"
    profiles = wait_for_rows(PROFILES_SQL, {"project": compat_project.project_id}, 1)
    assert [(p["profile_id"], p["properties"]) for p in profiles] == [
        (f"guest-{website[:8]}", {"table": "4"})]

"""Every service refuses a foreign ``Host`` (DNS rebinding), each as a real process started the
way ``trackhouse up`` starts it: the collector's non-ingestion routes, the dashboards and the
Dagster UI (which also refuses cross-site requests and GraphQL mutations sent by GET)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from security_support import FOREIGN_HOST

Start = Callable[..., tuple[str, Path]]


def get(url: str, host: str | None = None, **headers: str) -> httpx.Response:
    if host:
        headers["Host"] = host
    return httpx.get(url, headers=headers, timeout=30)


def assert_refused(answer: httpx.Response, setting: str) -> None:
    assert answer.status_code == 403, answer.text
    assert FOREIGN_HOST in answer.text and setting in answer.text


def websocket_handshake(url: str, host: str) -> httpx.Response:
    key = base64.b64encode(os.urandom(16)).decode()
    return get(url, host, Connection="Upgrade", Upgrade="websocket",
               **{"Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"})


def test_collector_public_routes_answer_any_host_the_rest_only_its_own(
    start_service: Start, redis_server
) -> None:
    url, _ = start_service(["collector", "--workers", "1"], "/health",
                           TRACKHOUSE_COLLECTOR_ALLOWED_HOSTS='["collector.example.com"]')
    for path in ("/docs", "/openapi.json", "/ready", "/redoc", "/no-such-route"):
        answer = get(url + path, FOREIGN_HOST)
        assert_refused(answer, "TRACKHOUSE_COLLECTOR_ALLOWED_HOSTS")
        assert answer.json()["statusCode"] == 403
    assert get(url + "/docs").status_code == 200
    assert get(url + "/docs", "collector.example.com").status_code == 200
    assert get(url + "/openapi.json", "localhost:8000").status_code == 200
    # ingestion answers whatever name the operator exposes it under
    assert get(url + "/tracker.js", FOREIGN_HOST).status_code == 200
    assert get(url + "/health", FOREIGN_HOST).status_code == 200
    tracked = httpx.post(url + "/track", headers={"Host": FOREIGN_HOST}, json={}, timeout=30)
    assert tracked.status_code in (400, 401) and "not one this service" not in tracked.text
    preflight = httpx.options(url + "/api/event", headers={
        "Host": FOREIGN_HOST, "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST"}, timeout=30)
    assert preflight.status_code != 403


def test_dashboards_refuse_a_foreign_host_on_every_route(start_service: Start) -> None:
    url, _ = start_service(["app"], "/_stcore/health",
                           TRACKHOUSE_APP_ALLOWED_HOSTS='["dash.example.com"]')
    for path in ("/", "/_stcore/health", "/static/anything", "/login"):
        assert_refused(get(url + path, FOREIGN_HOST), "TRACKHOUSE_APP_ALLOWED_HOSTS")
    refused = websocket_handshake(url + "/_stcore/stream", FOREIGN_HOST)
    assert refused.status_code == 403
    for host in (None, "dash.example.com", "localhost:8501"):
        page = get(url + "/", host)
        assert page.status_code == 200 and "<html" in page.text.lower()


@pytest.fixture
def dagster_url(start_service: Start, tmp_path: Path) -> str:
    url, _ = start_service(["dagster"], "/server_info", timeout_s=240,
                           TRACKHOUSE_DAGSTER_HOME=str(tmp_path / "dagster"),
                           TRACKHOUSE_DAGSTER_ALLOWED_HOSTS='["dagster.example.com"]')
    return url


def test_dagster_ui_refuses_foreign_hosts_cross_site_requests_and_mutations_by_get(
    dagster_url: str,
) -> None:
    url = dagster_url
    for path in ("/", "/server_info", "/graphql?query=%7Bversion%7D"):
        assert_refused(get(url + path, FOREIGN_HOST), "TRACKHOUSE_DAGSTER_ALLOWED_HOSTS")
    assert websocket_handshake(url + "/graphql", FOREIGN_HOST).status_code == 403
    assert get(url + "/server_info", "dagster.example.com").status_code == 200
    # a link or an image can send a GET: mutations are refused there, queries answer
    mutation = "mutation { reloadWorkspace { __typename } }"
    by_get = get(url + "/graphql?query=" + quote(mutation), Accept="application/json")
    assert by_get.status_code == 405 and "POST" in by_get.text
    named = "mutation Named { reloadWorkspace { __typename } } query Q { version }"
    assert get(url + "/graphql?query=" + quote(named)).status_code == 405
    version = get(url + "/graphql?query=" + quote("{ version }"), Accept="application/json")
    assert version.status_code == 200 and version.json()["data"]["version"]
    # a page on another site can POST (a form, or a text/plain fetch): refused by its Origin
    cross_site = httpx.post(url + "/graphql?query=" + quote(mutation), content=b"x", headers={
        "Origin": "https://evil.example", "Content-Type": "text/plain"}, timeout=30)
    assert cross_site.status_code == 403 and "cross-origin" in cross_site.text
    # Dagster's own UI (same origin) and command-line clients (no Origin) work
    for headers in ({"Origin": url}, {}):
        answer = httpx.post(url + "/graphql", json={"query": mutation}, headers=headers,
                            timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["reloadWorkspace"]["__typename"]

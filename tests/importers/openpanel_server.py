"""A small OpenPanel export API for the importer's tests (OpenPanel itself cannot run here):
``GET /export/events`` answering in the shape of OpenPanel's export controller and event
service (https://openpanel.dev/docs/api/export): client headers checked (401 with
``{"error": "Unauthorized", "message": ...}``), ``start``/``end`` filtering whole UTC days only
when both are given, newest first (day, time, profile id, name), ``page``/``limit`` (limit cut to
1,000), default fields plus the ``includes`` asked for, ``profile`` with OpenPanel's placeholder
(``isExternal`` false) for unknown profiles, ``meta`` with counts. Failures are injected per
(day, page): a 500 until healed, and a 429 with ``Retry-After`` once."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

DEFAULT_FIELDS = ("id", "name", "deviceId", "profileId", "sessionId", "projectId", "createdAt",
                  "path", "duration", "city", "country", "os", "browser")
START = datetime(2026, 10, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def openpanel_api_events(count: int, seed: int = 3, days: int = 6
                         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
    """(events as the service returns them with every field, external profiles, events the
    collector refuses, events the importer refuses)."""
    rng = random.Random(seed)
    profiles = [{"id": f"user-{n}", "firstName": "Ada", "lastName": f"L{n}",
                 "email": f"ada{n}@example.com", "avatar": "", "properties": {"tier": "gold"},
                 "createdAt": _iso(START - timedelta(days=30)), "projectId": "op-project",
                 "isExternal": True} for n in range(5)]
    events: list[dict[str, Any]] = []
    for n in range(count):
        device = f"dev-{rng.randrange(count // 4 + 1)}"
        profile = profiles[n % 5]["id"] if n % 3 == 0 else device
        moment = START + timedelta(seconds=rng.randrange(days * 86_400))
        events.append({
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "name": "screen_view" if n % 4 else "signup", "deviceId": device,
            "profileId": profile, "projectId": "op-project", "sessionId": f"s-{n // 5}",
            "createdAt": _iso(moment), "path": rng.choice(["/", "/pricing", "/docs"]),
            "origin": "https://shop.example.com", "duration": 0, "city": "Berlin",
            "country": "DE", "region": "BE", "os": "Windows", "osVersion": "10",
            "browser": "Chrome", "browserVersion": "120", "device": "desktop", "brand": "",
            "model": "", "referrer": "https://www.google.com/" if n % 7 == 0 else "",
            "referrerName": "", "referrerType": "", "longitude": None, "latitude": None,
            "importedAt": None, "sdkName": "web", "sdkVersion": "1.0",
            "properties": {"plan": rng.choice(["free", "pro"]), "n": str(n)}})
    # one the collector refuses (before 2000), one the importer refuses (no name)
    events.append({**events[0], "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   "createdAt": "1999-06-01T00:00:00.000Z"})
    events.append({**events[1], "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   "name": ""})
    return events, profiles, 1, 1


def _day(event: dict[str, Any]) -> date:
    return datetime.fromisoformat(event["createdAt"]).date()


@dataclass
class OpenPanelApi:
    events: list[dict[str, Any]]
    profiles: list[dict[str, Any]]
    client_id: str = "op-client"
    secret: str = "op-secret"
    failing: dict[tuple[str | None, int], int] = field(default_factory=dict)
    throttle_once: bool = False
    requests: list[dict[str, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # OpenPanel's order: toDate(created_at) desc, created_at desc, profile_id desc, name desc
        self.ordered = sorted(self.events, key=lambda e: (_day(e), e["createdAt"],
                                                          e["profileId"], e["name"]),
                              reverse=True)
        self.by_profile = {p["id"]: p for p in self.profiles}
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status, body, headers = api.answer(self.path, self.headers)
                data = orjson.dumps(body)
                self.send_response(status)
                for key, value in {**headers, "content-type": "application/json",
                                   "content-length": str(len(data))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.handler = Handler
        self.url = ""  # set by whoever serves ``handler`` (tests/support.local_http_server)

    def answer(self, path: str, headers: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        if parts.path != "/export/events":
            return 404, {"error": "Not Found"}, {}
        if (headers.get("openpanel-client-id") != self.client_id
                or headers.get("openpanel-client-secret") != self.secret):
            return 401, {"error": "Unauthorized", "message": "Client not found"}, {}
        params = parse_qs(parts.query)
        self.requests.append(params)
        if self.throttle_once:
            self.throttle_once = False
            return 429, {"statusCode": 429, "error": "Too Many Requests",
                         "message": "Rate limit exceeded, retry in 1 second"}, \
                {"retry-after": "1"}
        page = max(int(params.get("page", ["1"])[0]), 1)
        limit = max(min(int(params.get("limit", ["50"])[0]), 1000), 1)
        start, end = params.get("start", [None])[0], params.get("end", [None])[0]
        key = (start if start == end else None, page)
        if self.failing.get(key, 0) > 0:
            self.failing[key] -= 1
            return 500, {"error": "Internal Server Error", "message": "ClickHouse timeout"}, {}
        rows = self.ordered
        if start and end:  # OpenPanel filters only when both are given
            low, high = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
            rows = [e for e in rows if low <= _day(e) <= high]
        includes = set(params.get("includes", []))
        fields = set(DEFAULT_FIELDS) | (includes - {"profile", "meta"})
        data = []
        for event in rows[(page - 1) * limit:page * limit]:
            item = {k: v for k, v in event.items() if k in fields}
            if "profile" in includes:
                item["profile"] = self.by_profile.get(event["profileId"]) or {
                    "id": event["profileId"], "email": "", "avatar": "", "firstName": "",
                    "lastName": "", "createdAt": _iso(datetime.now(UTC)),
                    "projectId": "op-project", "isExternal": False, "properties": {}}
            data.append(item)
        return 200, {"meta": {"count": len(data), "totalCount": len(rows),
                              "pages": -(-len(rows) // limit), "current": page},
                     "data": data}, {}

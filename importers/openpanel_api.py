"""OpenPanel's export API: ``GET /export/events`` (https://openpanel.dev/docs/api/export), read
with a read or root client of the OpenPanel project, events with their properties and, through
``includes=profile``, their profiles.

The API pages a query's events newest first (``toDate(created_at) desc, created_at desc, ...``,
``page``/``limit``, at most 1,000 a page) and filters whole days (``start`` and ``end``, both
needed). A page number alone is no stable position: events arriving later push older ones to
later pages. So the reader walks one day at a time, newest day first: a past day no longer
changes, and the day after the last one read is found by asking for the newest event before it
(one event, ``end`` = the day before), which skips empty days. The position is (day, pages done
of it, page size); when every day is read it becomes the newest day of that pass (``floor``), so
a rerun reads the days since, that one included, and stops.

Field names are OpenPanel's service names (camelCase); they are renamed to its ClickHouse
columns and mapped by ``importers.openpanel`` as a table dump is, so an event has the same id
and columns whether it came from the API or a dump.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson

from importers.engine import Chunk, ImportFailed, source_key, with_retries
from importers.files import Record, Refuse
from importers.openpanel import event_message, profile_message

MAX_LIMIT = 1_000  # OpenPanel cuts a larger ``limit`` to this
# what the reader asks for beyond the default fields (id, name, deviceId, profileId, sessionId,
# createdAt, path, duration, city, country, os, browser); coordinates, SDK and referrer
# names are not carried over (docs/importers.md)
INCLUDES = ("profile", "properties", "origin", "referrer", "region", "osVersion",
            "browserVersion", "device", "brand", "model")
# service field -> ClickHouse column, as ``importers.openpanel`` reads a dump
RENAMED = {"deviceId": "device_id", "profileId": "profile_id", "sessionId": "session_id",
           "createdAt": "created_at", "osVersion": "os_version",
           "browserVersion": "browser_version", "firstName": "first_name",
           "lastName": "last_name"}
EARLIEST = "1970-01-01"  # a lower bound for "everything before a day" (both bounds needed)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def _columns(item: dict[str, Any]) -> Record:
    return {RENAMED.get(key, key): value for key, value in item.items()}


def _day_of(created_at: Any) -> date:
    try:
        moment = datetime.fromisoformat(str(created_at))
    except ValueError:
        raise ImportFailed(f"OpenPanel sent an event time that is not ISO 8601: "
                           f"{str(created_at)[:40]!r}") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


class OpenPanelApiSource:
    name = "openpanel"

    def __init__(self, api_url: str, client_id: str, client_secret: str,
                 project_id: str | None = None, *, http: httpx.Client | None = None,
                 retries: int = 4) -> None:
        self.api_url = api_url.rstrip("/")
        if not self.api_url.startswith(("http://", "https://")):
            raise ImportFailed(f"--api-url must be an http(s) URL, not {api_url[:80]!r}")
        self.project_id = project_id
        self.retries = retries
        # the secret lives in these headers only: never in the description or the checkpoint
        self.http = http or httpx.Client(timeout=120)
        self.headers = {"openpanel-client-id": client_id,
                        "openpanel-client-secret": client_secret,
                        "user-agent": "trackhouse-import"}
        self.key = source_key("openpanel-api", self.api_url, project_id or "", client_id)
        project = f" project {project_id}" if project_id else ""
        self.description = f"openpanel API {self.api_url}{project} (client {client_id})"[:500]
        self.requests = 0

    # -- HTTP --------------------------------------------------------------------------

    def _get(self, params: list[tuple[str, str | int]]) -> dict[str, Any]:
        if self.project_id:
            params = [("projectId", self.project_id), *params]
        url = f"{self.api_url}/export/events"

        def get() -> httpx.Response:
            self.requests += 1
            return self.http.get(url, params=params, headers=self.headers)

        # OpenPanel allows 100 export requests per 10 s and says how long to wait (429)
        answer = with_retries(get, self.retries, RETRY_STATUSES,
                              f"OpenPanel at {self.api_url} did not answer")
        if answer.status_code == 200:
            return self._page_body(answer)
        if answer.status_code in (401, 403):
            raise ImportFailed(
                f"OpenPanel refused the client ({answer.status_code} {_message(answer)}): "
                "--client-id and --client-secret must be a read or root client of the "
                "OpenPanel project")
        raise ImportFailed(f"OpenPanel answered {answer.status_code} to "
                           f"{_describe(params)}: {_message(answer)}")

    @staticmethod
    def _page_body(answer: httpx.Response) -> dict[str, Any]:
        try:
            body = orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ImportFailed("OpenPanel's answer is not an export page "
                               "({\"meta\": ..., \"data\": [...]}): is --api-url OpenPanel's "
                               "API (e.g. https://api.openpanel.dev)?")
        return body

    def _page(self, day: date, page: int, limit: int) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int]] = [
            ("start", day.isoformat()), ("end", day.isoformat()), ("page", page),
            ("limit", limit), *(("includes", name) for name in INCLUDES)]
        return self._get(params)["data"]

    def _newest_day(self, before: date | None) -> date | None:
        """The day of the newest event (before ``before``), None when there is none."""
        params: list[tuple[str, str | int]] = [("page", 1), ("limit", 1)]
        if before is not None:
            params += [("start", EARLIEST), ("end", (before - timedelta(days=1)).isoformat())]
        data = self._get(params)["data"]
        return _day_of(data[0].get("createdAt")) if data else None

    # -- Source ------------------------------------------------------------------------

    def count(self, position: str | None) -> int | None:
        """OpenPanel's ``totalCount`` for a first pass (it caches counts up to 10 minutes: the
        progress bar's total is an estimate); unknown when resuming."""
        if position is not None:
            return None
        total = self._get([("page", 1), ("limit", 1)]).get("meta", {}).get("totalCount")
        return int(total) if isinstance(total, int) else None

    def chunks(self, position: str | None, size: int) -> Iterator[Chunk]:
        state = orjson.loads(position) if position else {}
        limit = int(state.get("limit") or min(size, MAX_LIMIT))
        floor = date.fromisoformat(state["floor"]) if state.get("floor") else None
        if state.get("day"):  # resuming a pass
            day: date | None = date.fromisoformat(state["day"])
            top = date.fromisoformat(state["top"])
            pages = int(state.get("page", 0))
        else:  # a new pass, from the newest day down to the last pass's newest day
            day = top = self._newest_day(None)  # type: ignore[assignment]
            pages = 0
            if day is None or (floor is not None and day < floor):
                yield Chunk([], [], orjson.dumps(state).decode())
                return
        profiles: set[str] = set()  # sent in this run (a resumed run sends some again)
        chunk = Chunk([], [], "")
        while day is not None:
            items = self._page(day, pages + 1, limit)
            pages += 1
            for item in items:
                self._add(chunk, item, profiles)
            if len(items) < limit:  # the day is done: on to the newest day before it
                before, day, pages = day, self._newest_day(day), 0
                if day is not None and day >= before:  # else this would loop for ever
                    raise ImportFailed("OpenPanel ignored the start/end day filter (asked for "
                                       f"events before {before}, got one of {day})")
                if day is not None and floor is not None and day < floor:
                    day = None
            if day is None:
                chunk.position = orjson.dumps({"floor": top.isoformat()}).decode()
            else:
                chunk.position = orjson.dumps({"day": day.isoformat(), "page": pages,
                                               "limit": limit, "top": top.isoformat(),
                                               "floor": floor and floor.isoformat()}).decode()
            if chunk.read >= size or day is None:
                yield chunk
                chunk = Chunk([], [], "")

    @staticmethod
    def _add(chunk: Chunk, item: Any, profiles: set[str]) -> None:
        if not isinstance(item, dict):
            chunk.refused.append(("?", "an OpenPanel event that is not an object"))
            return
        profile = item.get("profile")
        # OpenPanel fills a placeholder (isExternal false) where no profile is known
        if isinstance(profile, dict) and profile.get("isExternal") and \
                profile.get("id") and profile["id"] not in profiles:
            profiles.add(profile["id"])
            try:
                message, row_id = profile_message(_columns(profile))
                chunk.messages.append(message)
                chunk.row_ids.append(row_id)
            except Refuse as error:
                chunk.refused.append((f"profile {profile.get('id')}", str(error)))
        record = _columns({k: v for k, v in item.items() if k != "profile"})
        try:
            message, row_id = event_message(record)
        except Refuse as error:
            chunk.refused.append((str(item.get("id") or "?"), str(error)))
            return
        chunk.messages.append(message)
        chunk.row_ids.append(row_id)


def _message(answer: httpx.Response) -> str:
    try:
        body = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return answer.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:200]
    return str(body)[:200]


def _describe(params: list[tuple[str, str | int]]) -> str:
    shown = {k: v for k, v in params if k in ("start", "end", "page")}
    return "GET /export/events " + " ".join(f"{k}={v}" for k, v in shown.items())

"""Umami v2 (PostgreSQL): ``website_event`` joined to its ``session``, with its
``event_data``, read in keyset-paginated chunks ordered by (created_at, event_id).

Column names follow Umami's v2 schema; older v2 releases kept the hostname on the session
and the region as ``subdivision1`` and had no UTM columns, so those are looked up in
``information_schema`` once. The mapping is in docs/importers.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict

from importers.engine import Chunk, ImportFailed, source_event_ids, source_key

# Umami's event_type: 1 page view, 2 custom event, 3 link (short links), 4 pixel
PAGE_VIEW, CUSTOM_EVENT = 1, 2
OTHER_TYPES = {3: "link_event", 4: "pixel_event"}
UTM_COLUMNS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
# Umami's session columns carried as the collector's overrides (docs/protocol.md)
SESSION_OVERRIDES = (("browser", "__browser"), ("os", "__os"), ("device", "__device"),
                     ("screen", "__screen"), ("language", "__language"),
                     ("country", "__country"), ("region", "__region"), ("city", "__city"))


def _database_url(url: str) -> str:
    """psycopg takes ``postgresql://``; SQLAlchemy-style ``postgresql+psycopg://`` too here."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}" if sep else url


class UmamiSource:
    name = "umami"

    def __init__(self, database_url: str, website_id: str) -> None:
        try:
            website_id = str(uuid.UUID(website_id))
        except ValueError:
            raise ImportFailed(f"--website-id must be Umami's website UUID, not "
                               f"{website_id[:60]!r}") from None
        url = _database_url(database_url)
        try:
            self.connection = psycopg.connect(url, autocommit=True)
        except psycopg.Error as error:
            raise ImportFailed(f"cannot connect to the Umami database: {error}") from None
        info = conninfo_to_dict(url)
        where = f"{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"
        self.website_id = website_id
        self.event_id = source_event_ids("umami", website_id)
        # a session's overrides, built once for its events (cleared every chunk)
        self.sessions: dict[str, dict[str, str]] = {}
        self.key = source_key("umami", where, website_id)
        self.description = f"umami {where} website {website_id}"
        self._query = self._build_query()
        self.domain = self._website_domain()

    def _columns(self, table: str) -> set[str]:
        rows = self.connection.execute(
            "select column_name from information_schema.columns where table_name = %s "
            "and table_schema = current_schema()", (table,)).fetchall()
        if not rows:
            raise ImportFailed(f"the database has no Umami table {table!r}")
        return {row[0] for row in rows}

    def _build_query(self) -> str:
        events, sessions = self._columns("website_event"), self._columns("session")
        self._columns("event_data")
        hostname = ("e.hostname" if "hostname" in events else
                    "s.hostname" if "hostname" in sessions else "null")
        region = ("s.region" if "region" in sessions else
                  "s.subdivision1" if "subdivision1" in sessions else "null")
        utm = ", ".join(f"e.{c}" if c in events else "null" for c in UTM_COLUMNS)
        distinct = "s.distinct_id" if "distinct_id" in sessions else "null"
        # every name above is one of a fixed set; the values are bound parameters
        return (
            "select e.event_id::text, e.session_id::text, e.visit_id::text, e.created_at, "
            "e.url_path, e.url_query, e.referrer_path, e.referrer_query, e.referrer_domain, "
            f"e.page_title, e.event_type, e.event_name, {hostname}, {utm}, "
            "s.browser, s.os, s.device, s.screen, s.language, s.country, "
            f"{region}, s.city, {distinct} "
            "from website_event e left join session s on s.session_id = e.session_id "
            "where e.website_id = %(website)s and e.created_at >= %(after)s "
            "and (e.created_at, e.event_id) > (%(after)s, %(after_id)s::uuid) "
            "order by e.created_at, e.event_id")

    def _website_domain(self) -> str:
        try:
            row = self.connection.execute(
                "select domain from website where website_id = %s::uuid",
                (self.website_id,)).fetchone()
        except psycopg.Error:  # no website table: the hostnames are on the events
            return ""
        return (row[0] or "") if row else ""

    @staticmethod
    def _after(position: str | None) -> dict[str, Any]:
        if position is None:
            return {"after": datetime.fromisoformat("0001-01-01T00:00:00+00:00"),
                    "after_id": "00000000-0000-0000-0000-000000000000"}
        state = orjson.loads(position)
        return {"after": datetime.fromisoformat(state["created_at"]),
                "after_id": state["event_id"]}

    def count(self, position: str | None) -> int | None:
        try:
            row = self.connection.execute(
                "select count(*) from website_event e where e.website_id = %(website)s "
                "and e.created_at >= %(after)s "
                "and (e.created_at, e.event_id) > (%(after)s, %(after_id)s::uuid)",
                {"website": self.website_id, **self._after(position)}).fetchone()
        except psycopg.Error as error:
            raise ImportFailed(f"reading Umami's tables failed: {error}") from None
        return int(row[0]) if row else None

    def chunks(self, position: str | None, size: int) -> Iterator[Chunk]:
        """One query from the position on, fetched ``size`` rows at a time from a server-side
        cursor: PostgreSQL orders the rows once. A query per chunk (LIMIT) made it join and
        sort every remaining row for each chunk wherever the planner had no statistics (a
        freshly restored database): quadratic, 31 us of PostgreSQL CPU per event at 100,000
        events (ADR 0018)."""
        params = {"website": self.website_id, **self._after(position)}
        try:
            # a transaction of its own: the cursor needs one, and its snapshot keeps the
            # order stable; events written meanwhile are read by the next run
            with self.connection.transaction(), self.connection.cursor(
                    name="trackhouse_import") as cursor:
                cursor.execute(self._query, params)
                while rows := cursor.fetchmany(size):
                    self.sessions.clear()
                    data = self._event_data([row[0] for row in rows])
                    messages = [self.message(row, data.get(row[0])) for row in rows]
                    last = rows[-1]
                    yield Chunk(messages, [row[0] for row in rows], orjson.dumps(
                        {"created_at": last[3].isoformat(), "event_id": last[0]}).decode())
        except psycopg.Error as error:
            raise ImportFailed(f"reading Umami's tables failed: {error}") from None

    def _event_data(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for event_id, key, text, number, moment, data_type in self.connection.execute(
            "select website_event_id::text, data_key, string_value, number_value, date_value, "
            "data_type from event_data where website_event_id = any(%s::uuid[])",
            (event_ids,),
        ):
            found.setdefault(event_id, {})[key] = _data_value(text, number, moment, data_type)
        return found

    def message(self, row: tuple[Any, ...], data: dict[str, Any] | None) -> dict[str, Any]:
        (event_id, session_id, visit_id, created_at, url_path, url_query, referrer_path,
         referrer_query, referrer_domain, title, event_type, event_name, hostname,
         *rest) = row
        utm, session, distinct_id = rest[:5], rest[5:13], rest[13]
        host = hostname or self.domain
        query = url_query or ""
        if any(utm):  # UTM kept in columns but not in the stored query go into the URL
            present = dict(parse_qsl(query))
            missing = {c: v for c, v in zip(UTM_COLUMNS, utm, strict=True)
                       if v and c not in present}
            if missing:
                query = f"{query}&{urlencode(missing)}" if query else urlencode(missing)
        page = f"https://{host}{url_path or '/'}" if host else (url_path or "")
        if query:
            page += f"?{query}"
        properties: dict[str, Any] = {**(data or {})}
        properties.update({
            "__eventId": self.event_id(event_id),
            "__timestamp": int(created_at.timestamp() * 1000),
            "__path": page, "umami.visit_id": visit_id or "",
        })
        if session_id:
            properties["__deviceId"] = session_id
        if title:
            properties["__title"] = title
        if referrer_domain:
            referrer = f"https://{referrer_domain}{referrer_path or ''}"
            properties["__referrer"] = f"{referrer}?{referrer_query}" if referrer_query \
                else referrer
        overrides = self.sessions.get(session_id)
        if overrides is None:  # the session's first event of this chunk
            overrides = self.sessions[session_id] = {
                key: value for value, (_, key) in zip(session, SESSION_OVERRIDES, strict=True)
                if value}
        properties.update(overrides)
        if event_type == PAGE_VIEW:
            name = "screen_view"
        elif event_type == CUSTOM_EVENT:
            name = event_name or "event"
        else:
            name = event_name or OTHER_TYPES.get(event_type, f"umami_event_{event_type}")
        payload: dict[str, Any] = {"name": name, "properties": properties}
        if distinct_id:
            payload["profileId"] = distinct_id
        return {"type": "track", "payload": payload}


def _data_value(text: str | None, number: Decimal | None, moment: datetime | None,
                data_type: int) -> Any:
    """Umami's typed event data (1 string, 2 number, 3 boolean, 4 date, 5 array as JSON)."""
    if data_type == 2 and number is not None:
        return int(number) if number == number.to_integral_value() else float(number)
    if data_type == 4 and moment is not None:
        return moment.isoformat()
    return text

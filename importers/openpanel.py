"""OpenPanel: a dump of its ClickHouse ``events`` table (``SELECT * FROM events FORMAT
JSONEachRow`` or ``CSVWithNames``) and, optionally, of its ``profiles`` table.

OpenPanel's columns are Trackhouse's own (Trackhouse speaks its protocol), so most map one to
one; its session id is kept as a property, as Trackhouse derives sessions itself. The mapping
is in docs/importers.md.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from importers.engine import source_event_id
from importers.files import FileSource, Record, Refuse

# column -> the collector's override property (docs/protocol.md)
OVERRIDES = {"os": "__os", "os_version": "__os_version", "browser": "__browser",
             "browser_version": "__browser_version", "device": "__device", "brand": "__brand",
             "model": "__model", "country": "__country", "region": "__region",
             "city": "__city", "language": "__language", "screen": "__screen"}
_MAP_ITEM = re.compile(r"'((?:[^'\\]|\\.)*)':'((?:[^'\\]|\\.)*)'")
_ESCAPE = re.compile(r"\\(.)")


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(
        m.group(1), m.group(1)), text)


def map_value(value: Any) -> dict[str, Any]:
    """A ``Map(String, String)`` as JSONEachRow writes it (an object) or as CSV does
    (``{'key':'value',...}``, ClickHouse's literal), or JSON text."""
    if isinstance(value, dict):
        return value
    if not value or not isinstance(value, str):
        return {}
    text = value.strip()
    if text.startswith("{\""):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise Refuse("properties: not a ClickHouse map or JSON object") from None
        return parsed if isinstance(parsed, dict) else {}
    if text in ("{}", ""):
        return {}
    items = _MAP_ITEM.findall(text)
    if not items:
        raise Refuse("properties: not a ClickHouse map or JSON object")
    return {_unescape(k): _unescape(v) for k, v in items}


def _epoch_ms(value: Any) -> int:
    """ClickHouse's DateTime64 text (``2024-05-01 12:00:00.123``, UTC) or ISO 8601."""
    if isinstance(value, int | float):
        return int(value)
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise Refuse(f"created_at is not a time: {str(value)[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def is_profile(record: Record) -> bool:
    """A row of OpenPanel's ``profiles`` table (events have neither column)."""
    return "first_name" in record or "is_external" in record


def event_message(record: Record) -> tuple[dict[str, Any], str]:
    """(collector message, OpenPanel's event id) of an ``events`` row (snake_case columns, as
    the table dumps and, renamed, the export API give them); raises ``Refuse``."""
    row_id, name = _text(record.get("id")), _text(record.get("name"))
    if not row_id or not name:
        raise Refuse("OpenPanel event without id or name")
    properties: dict[str, Any] = dict(map_value(record.get("properties")))
    properties.update({
        "__eventId": source_event_id("openpanel", row_id),
        "__timestamp": _epoch_ms(record.get("created_at")),
    })
    if device := _text(record.get("device_id")):
        properties["__deviceId"] = device[:64]
    if session := _text(record.get("session_id")):
        properties["openpanel.session_id"] = session
    path, origin = _text(record.get("path")), _text(record.get("origin"))
    if path or origin:
        properties["__path"] = f"{origin}{path}" if path.startswith("/") else path or origin
    if referrer := _text(record.get("referrer")):
        properties["__referrer"] = referrer
    if duration := record.get("duration"):
        properties["__duration"] = duration
    for column, key in OVERRIDES.items():
        if value := _text(record.get(column)):
            properties[key] = value
    payload: dict[str, Any] = {"name": name, "properties": properties}
    if profile := _text(record.get("profile_id")):
        if profile != device:  # OpenPanel stores the device id when no profile is known
            payload["profileId"] = profile
    return {"type": "track", "payload": payload}, row_id


def profile_message(record: Record) -> tuple[dict[str, Any], str]:
    """(``identify`` message, row id) of a ``profiles`` row (snake_case columns)."""
    profile_id = _text(record.get("id"))
    if not profile_id:
        raise Refuse("OpenPanel profile without id")
    properties: dict[str, Any] = dict(map_value(record.get("properties")))
    created = record.get("created_at")
    properties["__eventId"] = source_event_id("openpanel-profile", profile_id, _text(created))
    if created:
        properties["__timestamp"] = _epoch_ms(created)
    payload: dict[str, Any] = {"profileId": profile_id, "properties": properties}
    for column, key in (("first_name", "firstName"), ("last_name", "lastName"),
                        ("email", "email"), ("avatar", "avatar")):
        if value := _text(record.get(column)):
            payload[key] = value
    return {"type": "identify", "payload": payload}, f"profile {profile_id}"


class OpenPanelSource(FileSource):
    name = "openpanel"

    def message(self, record: Record, file_number: int, row_number: int
                ) -> tuple[dict[str, Any], str]:
        return profile_message(record) if is_profile(record) else event_message(record)

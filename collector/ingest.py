"""The ingestion seam: validate, enrich and buffer messages; any router calls
``ingest_messages`` (through ``collector.intake``).

The OpenPanel routers (``/track``, ``/track/batch``) call it with the decoded JSON messages;
the Plausible and Umami routers translate their trackers' requests into OpenPanel messages
(``{"type": "track", "payload": {"name": "screen_view", "properties": {"__path": ...}}}``) and
call it the same way. It never waits on ClickHouse: rows go to the Redis buffer and the worker
lands them.

A message's path, in the order of this module's last part: parse (``parse_message``),
enrich and identify (``_prepare``: its sender, device ids, time, event id and dedup token,
its columns), buffer (``_accept_request``: the rows encoded for the accept script, one
round trip through ``pipeline.AcceptGroups``), answer (``_answer``).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
from redis.asyncio import Redis

from accounts.auth import AuthenticatedClient
from collector import identity
from collector.buffer import AcceptLimits, AcceptRequest, Keys, session_keys
from collector.enrich.geo import GeoLocator
from collector.enrich.referrer import classify_referrer, utm_from_query
from collector.enrich.useragent import parse_agent
from collector.pipeline import AcceptGroups
from collector.ratelimit import RateLimits
from collector.schemas import (
    MAX_VALUE,
    AssignGroupPayload,
    GroupPayload,
    IdentifyPayload,
    IncrementPayload,
    Message,
    MessageError,
    PlainTrackMessage,
    parse_message,
)
from trackhouse import event_times
from trackhouse.client_address import valid_ip
from trackhouse.row_encoding import EVENTS, PROFILES, RowEncoder
from trackhouse.session_ids import live_session_start, session_id
from trackhouse.settings import Settings

log = logging.getLogger(__name__)

CLAMP_PAST_MS = 7 * 86_400_000
CLAMP_FUTURE_MS = 60_000
# The times an imported event may have (``__timestamp``; live events are clamped instead).
IMPORT_EARLIEST_MS, IMPORT_AHEAD_MS = event_times.EARLIEST_MS, event_times.AHEAD_MS
IMPORT_RANGE_TEXT = event_times.RANGE_TEXT
INT64_MAX = 2**63 - 1
UINT32_MAX = 2**32 - 1
SESSION_BUCKET_MS = 1_800_000
MAX_CLIENT_ID = 64

# Reserved properties that become columns (protocol.md); the rest stay in ``properties``.
_OVERRIDES = {
    "__os": "os", "__os_version": "os_version", "__browser": "browser",
    "__browser_version": "browser_version", "__device": "device", "__brand": "brand",
    "__model": "model", "__country": "country", "__region": "region", "__city": "city",
    "__language": "language", "__screen": "screen",
}
_CONSUMED = frozenset({
    "__path", "__title", "__referrer", "__timestamp", "__revenue", "__deviceId", "__ip",
    "__eventId", "__duration", "__query", "__hash", "__userAgent", *_OVERRIDES,
})


class BacklogFull(Exception):
    """The buffer holds more than ``collector_backlog_limit`` rows: answer 503."""


@dataclass
class Services:
    """What ingestion needs, built once per process (see ``collector.main``)."""

    settings: Settings
    redis: Redis
    geo: GeoLocator
    salts: identity.DailySalts = field(init=False)

    def __post_init__(self) -> None:
        self.salts = identity.DailySalts(self.redis)
        settings = self.settings
        window_s = settings.collector_event_dedup_ttl_s
        self.accept = AcceptGroups(self.redis, AcceptLimits(
            backlog_limit=settings.collector_backlog_limit,
            session_idle_ms=settings.collector_session_idle_s * 1000,
            # an id is looked up in its window's set and the next one's
            event_ids_ttl_s=2 * window_s + 60,
            request_window_ms=settings.collector_duplicate_window_ms))


@dataclass
class IngestContext:
    """Everything about the request that is not in the messages themselves."""

    services: Services
    client: AuthenticatedClient
    ip: str
    user_agent: str
    # the request's Origin header: the site of an event that names no page (``__path``)
    origin: str = ""
    sdk_name: str = ""
    sdk_version: str = ""
    # True on /track/batch when a client that proved its secret asks for an import: history
    # (the client's timestamps are kept as sent, imported_at is set, no live session).
    importing: bool = False
    # counted by the accept script, in the same round trip as the events (None: not limited)
    rate_limits: RateLimits | None = None
    # when the request arrived (ms since the epoch); the rest derived once here (plain
    # attributes: cached_property takes a lock on every access)
    received_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    received_text: str = field(init=False)
    received_day: date = field(init=False)  # its UTC day: the day of the salts
    # the JSON members (no braces, defaults left out: ``json_members``) of the columns every
    # event of this request shares (``request_columns``), spliced into each row
    request_json: bytes = field(init=False)
    sender: _Sender = field(init=False)  # the request's own, for messages that name none

    def __post_init__(self) -> None:
        self.sender = _Sender(self.ip, self.user_agent, not self.client.has_secret)
        # cached by the millisecond: requests arriving together share the text and the day
        self.received_text = _format_ms(self.received_ms)
        self.received_day = _utc_day(self.received_ms // 86_400_000)
        received = f'"{self.received_text}"'  # digits, '-', ':', '.' and a space
        self.request_json = b"".join((
            _sender_json(self.client.project_id, self.sdk_name, self.sdk_version),
            f',"received_at":{received}'.encode(),
            f',"imported_at":{received}'.encode() if self.importing else b""))


@lru_cache(maxsize=4_096)
def _sender_json(project_id: str, sdk_name: str, sdk_version: str) -> bytes:
    """JSON members of a request's project and SDK columns (the project id is never empty)."""
    return json_members({"project_id": project_id, "sdk_name": _text(sdk_name, 64),
                         "sdk_version": _text(sdk_version, 64)})


@dataclass
class ItemResult:
    """Outcome of one message: accepted (a duplicate counts as accepted), or an error."""

    status: str  # "accepted" | "duplicate" | "error"
    device_id: str = ""
    session_id: str = ""
    error: str = ""

    def ids(self) -> dict[str, str]:
        """``deviceId``, and ``sessionId`` only when there is one: OpenPanel's web SDK keeps
        whatever session id an answer carries, an empty one too."""
        if not self.session_id:
            return {"deviceId": self.device_id}
        return {"deviceId": self.device_id, "sessionId": self.session_id}

    def as_json(self) -> dict[str, str]:
        if self.status == "error":
            return {"status": "error", "error": self.error}
        return {"status": self.status, **self.ids()}


def format_time(moment: datetime) -> str:
    """DateTime64(3) text for JSONEachRow (UTC, milliseconds)."""
    return moment.astimezone(UTC).isoformat(sep=" ", timespec="milliseconds")[:23]


def parse_client_time(value: Any) -> datetime | None:
    """``__timestamp``: ISO 8601 (naive means UTC) or epoch milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MessageError("properties.__timestamp must be an ISO 8601 time")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise MessageError("properties.__timestamp is out of range") from None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise MessageError(f"properties.__timestamp is not an ISO 8601 time: "
                           f"{str(value)[:40]!r}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # an offset pushes it past the calendar's first or last day
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def revenue_value(value: Any) -> int:
    """``__revenue``: a whole number of the currency's smallest unit (cents) within the
    column's Int64, as an integer, an integral float or their text (e.g. 4900, 4900.0, "4900").
    A fraction is refused, not rounded: it means the sender counted in whole units."""
    if type(value) is int:
        number = value
    elif type(value) is float and value.is_integer():  # finite and whole
        number = int(value)
    elif type(value) is str and _INTEGER.fullmatch(value):
        number = int(value) if len(value) < 30 else INT64_MAX + 1
    else:
        raise MessageError(f"properties.__revenue must be a whole number of the currency's "
                           f"smallest unit (e.g. cents), not {_clip(value)}")
    if not -INT64_MAX - 1 <= number <= INT64_MAX:
        raise MessageError(f"properties.__revenue {_clip(value)} is out of range: it must fit "
                           f"a signed 64-bit integer")
    return number


def duration_value(value: Any) -> int:
    """``__duration`` in milliseconds, clamped to the column's UInt32 (fractions dropped)."""
    if type(value) is str and _INTEGER.fullmatch(value):
        value = int(value) if len(value) < 30 else UINT32_MAX
    if type(value) is not int and not (type(value) is float and math.isfinite(value)):
        raise MessageError(f"properties.__duration must be a number of milliseconds, not "
                           f"{_clip(value)}")
    return max(0, min(int(value), UINT32_MAX))


_INTEGER = re.compile(r"-?[0-9]+")


def _clip(value: Any) -> str:
    return repr(value)[:40] if isinstance(value, str | int | float) else type(value).__name__


def flatten_properties(properties: dict[str, Any] | None) -> dict[str, str]:
    """Property values as text for ``Map(String, String)``: nested objects become dotted
    keys (as OpenPanel does), lists JSON, booleans ``true``/``false``; nulls are dropped."""
    if not properties:
        return {}
    if _all_text(properties.values()):
        return dict(properties)  # the common case: text values, nothing to convert
    flat: dict[str, str] = {}

    def visit(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, dict):
            for key, inner in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), inner)
            return
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = value
        elif isinstance(value, int | float):
            text = orjson.dumps(value).decode()
        else:
            text = orjson.dumps(value).decode()
        if len(text) > MAX_VALUE:
            raise MessageError(f"properties.{prefix[:60]} is longer than {MAX_VALUE} characters")
        flat[prefix] = text

    for key, value in properties.items():
        visit(key, value)
    return flat


def _all_text(values: Iterable[Any]) -> bool:
    """Every value is text of at most ``MAX_VALUE`` characters (a loop: twice as fast as
    ``all()`` over a generator for an event's few properties)."""
    for value in values:
        if type(value) is not str or len(value) > MAX_VALUE:
            return False
    return True


def _text(value: Any, limit: int = 2_000) -> str:
    if value is None:
        return ""
    return str(value)[:limit]


@dataclass(slots=True)
class _Prepared:
    """One message turned into a row, waiting for its session and for the buffer."""

    index: int
    table: str  # "events" | "profiles"
    # the row's own columns; ``tail``: JSON members of the columns it shares with other rows
    # (request, page, visitor), serialised once per request or visitor, each after a comma;
    # event rows leave out the columns at their default (see ``json_members``)
    row: dict[str, Any]
    # the event id (remembered in the dedup window's set) or, for an event with neither id nor
    # time, its request fingerprint's key (SET NX for the duplicate window)
    dedup_token: str
    by_id: bool
    device_id: str
    previous_device_id: str
    live_session: bool
    event_ms: int
    tail: bytes = b""

    def json(self) -> bytes:
        return self.json_open() + b"}"

    def json_open(self) -> bytes:
        """The row's JSON without its closing brace."""
        data = orjson.dumps(self.row)  # profiles are kept whole: '' and NULL differ there
        return data[:-1] + self.tail


@lru_cache(maxsize=20_000)
def _page_fields(url: str) -> tuple[dict[str, str], str]:
    """(origin/path/query/hash columns, page host) of a page URL; pages repeat, so cached
    (callers only read the dict)."""
    if not url:
        return {"origin": "", "path": "", "query": "", "hash": ""}, ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return {"origin": "", "path": _text(url), "query": "", "hash": ""}, ""
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    columns = {"origin": origin[:500], "path": _text(parts.path or ("/" if origin else "")),
               "query": _text(parts.query), "hash": _text(parts.fragment)}
    return columns, host if origin else ""


@lru_cache(maxsize=20_000)
def _page_columns(page_url: str, referrer_url: str, origin: str) -> dict[str, str]:
    """Page, referrer and UTM columns of (page URL, referrer URL, request's Origin); a site's
    pages and referrers repeat, so one cached dict serves many events (callers only read it)."""
    page, page_host = _page_fields(page_url)
    # an event without a page URL (an SDK's link_out) comes from the site of its Origin, so
    # a referrer on that site is internal, not a source
    referrer = classify_referrer(referrer_url, page_host or _page_fields(origin)[1])
    return {**page, "referrer": referrer_url, "referrer_name": referrer.name,
            "referrer_type": referrer.type, **utm_from_query(page["query"])}


@lru_cache(maxsize=65_536)
def _visitor_columns(geo: GeoLocator, ip: str, user_agent: str, bot_check: bool
                     ) -> dict[str, Any]:
    """Geo and user-agent columns of one visitor (cached: callers only read it)."""
    found = geo.lookup(ip)
    agent = parse_agent(user_agent)
    is_bot = agent.is_bot and bot_check
    return {
        "country": found.country, "region": found.region, "city": found.city,
        "latitude": found.latitude, "longitude": found.longitude,
        "os": agent.os, "os_version": agent.os_version,
        "browser": agent.browser, "browser_version": agent.browser_version,
        "device": agent.device, "brand": agent.brand, "model": agent.model,
        "is_bot": is_bot, "bot_name": agent.bot_name if is_bot else "",
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (float timestamps can be 1 ms off)."""
    return (moment - _EPOCH) // _MILLISECOND


def _is_default(value: Any) -> bool:
    """A value the column's default gives anyway ('' , NULL, 0, false, [], {})."""
    return value is None or value is False or (
        type(value) in (str, list, dict) and not value) or (type(value) is int and value == 0)


def json_members(columns: dict[str, Any]) -> bytes:
    """The columns as JSON object members (no braces), leaving out those whose value the
    column's default gives: ClickHouse fills omitted JSONEachRow fields with the defaults,
    and most of an event's 50 columns are empty, so rows shrink by about 40% in Redis, in
    the batches and in the warehouse's parser."""
    return orjson.dumps({k: v for k, v in columns.items() if not _is_default(v)})[1:-1]


@lru_cache(maxsize=20_000)
def _page_json(page_url: str, referrer_url: str, origin: str) -> bytes:
    return json_members(_page_columns(page_url, referrer_url, origin))


@lru_cache(maxsize=65_536)
def _visitor_json(geo: GeoLocator, ip: str, user_agent: str, bot_check: bool,
                  overrides: tuple[tuple[str, str], ...]) -> bytes:
    """The visitor's columns as JSON members, with the columns a sender overrides (imports:
    the visitor's own; their combinations repeat, so cached with them)."""
    columns = _visitor_columns(geo, ip, user_agent, bot_check)
    return json_members({**columns, **dict(overrides)} if overrides else columns)


@lru_cache(maxsize=4_096)
def _format_ms(moment_ms: int) -> str:
    return format_time(_EPOCH + moment_ms * _MILLISECOND)


@lru_cache(maxsize=8)
def _utc_day(days_since_epoch: int) -> date:
    return (_EPOCH + timedelta(days=days_since_epoch)).date()


class _Sender(NamedTuple):
    """Who sent a message: the request's visitor, or the one a secret client forwards."""

    ip: str
    user_agent: str
    # a client that proved its secret is never a bot itself; a visitor's user agent that it
    # forwards per message (importers) is checked like any browser's
    bot_check: bool


def _sender(properties: dict[str, Any], context: IngestContext) -> _Sender:
    request = context.sender
    if not context.client.has_secret:
        return request
    ip = valid_ip(str(properties["__ip"])) if properties.get("__ip") else None
    user_agent = properties.get("__userAgent")
    if isinstance(user_agent, str):
        return _Sender(ip or request.ip, user_agent[:1000], True)
    return _Sender(ip, request.user_agent, False) if ip else request


# control characters: a device id travels NUL-separated and is spliced into a JSON row
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _device_ids(properties: dict[str, Any], context: IngestContext, sender: _Sender,
                salts: tuple[str, str]) -> tuple[str, str]:
    """(today's device id, the previous day's or '' when no live session can need it)."""
    sdk_device = properties.get("__deviceId")
    if sdk_device is not None and (
        not isinstance(sdk_device, str) or not 0 < len(sdk_device) <= MAX_CLIENT_ID
        or _CONTROL.search(sdk_device)
    ):
        raise MessageError("properties.__deviceId must be a string of 1-64 characters "
                           "without control characters")
    if sdk_device:
        # the SDK's id is the same every day: yesterday's hash may hold its live session
        return sdk_device, sdk_device
    project = context.client.project_id
    device = identity.device_id(salts[0], sender.user_agent, sender.ip, project)
    # yesterday's id only matters to a live session that crossed midnight
    previous = "" if context.importing else identity.device_id(
        salts[1], sender.user_agent, sender.ip, project)
    return device, previous


def _event_time(properties: dict[str, Any], context: IngestContext
                ) -> tuple[datetime | None, int]:
    """(the client's ``__timestamp`` if any, the event's time in ms): a live event's is
    clamped near its arrival, an imported event's must lie in the importable range."""
    client_time = parse_client_time(properties.get("__timestamp"))
    received_ms = context.received_ms
    if client_time is None:
        return None, received_ms
    created_ms = epoch_ms(client_time)
    if not context.importing:
        return client_time, min(max(created_ms, received_ms - CLAMP_PAST_MS),
                                received_ms + CLAMP_FUTURE_MS)
    if not IMPORT_EARLIEST_MS <= created_ms <= received_ms + IMPORT_AHEAD_MS:
        raise MessageError(f"properties.__timestamp {_clip(properties['__timestamp'])} is "
                           f"outside the range of imported events: {IMPORT_RANGE_TEXT}")
    return client_time, created_ms


def _client_event_id(properties: dict[str, Any]) -> str | None:
    """The message's own event id (``__eventId``), if it has one."""
    client_event_id = properties.get("__eventId")
    if client_event_id is None:
        return None
    if not isinstance(client_event_id, str | int) or not (
            0 < len(str(client_event_id)) <= MAX_CLIENT_ID):
        raise MessageError("properties.__eventId must be a string of 1-64 characters")
    return str(client_event_id)


def _event_identity(raw: Any, properties: dict[str, Any], context: IngestContext,
                    sender: _Sender, client_event_id: str | None, device: str, name: str,
                    page_url: str, flat: dict[str, str], has_time: bool
                    ) -> tuple[str, str, bool]:
    """(event id, dedup token, deduplicated by id): the client's event id, else one derived
    from the content when the client stamped a time, else the request's fingerprint."""
    project = context.client.project_id
    if client_event_id is not None:
        event_id = identity.event_id_from_client(project, client_event_id)
        return event_id, event_id, True
    if has_time:
        event_id = identity.event_id_from_content(
            project, device, name, str(properties["__timestamp"]), page_url, flat)
        return event_id, event_id, True
    fingerprint = identity.request_fingerprint(project, raw, sender.ip, sender.user_agent)
    return (identity.derived_uuid("request", fingerprint, context.received_ms),
            Keys.dedup("req", fingerprint), False)


def _own_columns(payload: Any, properties: dict[str, Any], event_id: str, name: str,
                 created_text: str, flat: dict[str, str]) -> dict[str, Any]:
    """An event row's own columns, those at their default left out (``json_members``); most
    events carry few of them, so each is looked at only when present."""
    row: dict[str, Any] = {"id": event_id, "name": name, "created_at": created_text}
    if profile_id := _text(payload.profileId, 256):
        row["profile_id"] = profile_id
    if title := _text(properties.get("__title")):
        row["title"] = title
    if flat:
        row["properties"] = flat
    if payload.groups:
        row["groups"] = [str(group)[:200] for group in payload.groups]
    revenue, duration = properties.get("__revenue"), properties.get("__duration")
    if revenue not in (None, "") and (revenue := revenue_value(revenue)):
        row["revenue"] = revenue
    if duration not in (None, "") and (duration := duration_value(duration)):
        row["duration_ms"] = duration
    return row


def _shared_columns(properties: dict[str, Any], context: IngestContext, sender: _Sender,
                    page_url: str) -> bytes:
    """The JSON members, each after a comma, of the columns an event shares with others:
    the request's, the page's and the visitor's (with the ones the sender overrides)."""
    referrer_url = _text(properties.get("__referrer"))
    overrides = () if _OVERRIDES.keys().isdisjoint(properties) else _overrides(properties)
    fragments = (context.request_json, _page_json(page_url, referrer_url, context.origin),
                 _visitor_json(context.services.geo, sender.ip, sender.user_agent,
                               sender.bot_check, overrides))
    # the request's members are never empty (project_id, received_at)
    return b"," + b",".join(filter(None, fragments))


def _overrides(properties: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(column, text) of the derived columns a message sets itself (``_OVERRIDES``)."""
    found = []
    for key, column in _OVERRIDES.items():
        value = properties.get(key)
        if value is not None and value != "":
            found.append((column, value[:200] if type(value) is str else _text(value, 200)))
    return tuple(found)


def _prepare(index: int, raw: Any, message: Message | PlainTrackMessage,
             context: IngestContext, salts: tuple[str, str]) -> _Prepared:
    """One parsed message as a row: who sent it, its device, time and ids, its columns."""
    payload = message.payload
    properties: dict[str, Any] = getattr(payload, "properties", None) or {}
    sender = _sender(properties, context)
    device, previous_device = _device_ids(properties, context, sender, salts)
    client_time, created_ms = _event_time(properties, context)
    client_event_id = _client_event_id(properties)
    page_url = _text(properties.get("__path"))
    name: str = payload.name if message.type == "track" else message.type
    flat = flatten_properties(properties if _CONSUMED.isdisjoint(properties) else
                              {k: v for k, v in properties.items() if k not in _CONSUMED})
    event_id, token, by_id = _event_identity(raw, properties, context, sender, client_event_id,
                                             device, name, page_url, flat,
                                             client_time is not None)
    received_ms = context.received_ms
    created_text = context.received_text if created_ms == received_ms else _format_ms(created_ms)
    if message.type != "track":
        row = _profile_row(message, event_id, context.client.project_id, flat, created_text,
                           context.received_text)
        return _Prepared(index, "profiles", row, token, by_id, device, previous_device, False,
                         created_ms)
    row = _own_columns(payload, properties, event_id, name, created_text, flat)
    return _Prepared(index, "events", row, token, by_id, device, previous_device,
                     not context.importing, created_ms,
                     _shared_columns(properties, context, sender, page_url))


def _profile_row(message: Message, row_id: str, project: str, flat: dict[str, str],
                 created: str, received: str) -> dict[str, Any]:
    payload = message.payload
    row: dict[str, Any] = {
        "id": row_id, "project_id": project, "kind": message.type,
        "profile_id": _text(getattr(payload, "profileId", None), 256),
        "first_name": None, "last_name": None, "email": None, "avatar": None,
        "properties": flat, "property": "", "delta": 0.0,
        "updated_at": created, "received_at": received,
    }
    if isinstance(payload, IdentifyPayload):
        row.update(first_name=payload.firstName, last_name=payload.lastName,
                   email=payload.email, avatar=payload.avatar)
    elif isinstance(payload, IncrementPayload):  # increment or decrement
        sign = -1.0 if message.type == "decrement" else 1.0
        row.update(property=payload.property, delta=sign * float(payload.value))
    elif isinstance(payload, GroupPayload):
        # groups: kept as profile rows of kind 'group' keyed by the group id
        row.update(profile_id=payload.id, properties={
            **flat, "$type": payload.type or "", "$name": payload.name or ""})
    elif isinstance(payload, AssignGroupPayload):
        row.update(properties={**flat, "$groupIds": orjson.dumps(payload.groupIds).decode()})
    return row


async def ingest_messages(messages: list[Any], context: IngestContext) -> list[ItemResult]:
    """Validate, enrich and buffer ``messages`` (decoded JSON values); one result each.

    One Redis round trip for the whole request (rate limits, sessions, deduplication and the
    append are one script). Raises ``BacklogFull`` when the buffer is past its bound and
    ``ApiError`` (429) past a rate limit (nothing stored either way).
    """
    results: list[ItemResult | None] = [None] * len(messages)
    prepared = await _prepare_all(messages, context, results)
    limits = context.rate_limits
    if prepared:
        answer = await context.services.accept.accept(*_accept_request(prepared, context))
        await _answer(answer, prepared, context, results)
    elif limits is not None:  # nothing to store, but the request counts all the same
        await limits.check(context.client.client_id, context.ip)
    return [r or ItemResult(status="error", error="not processed") for r in results]


async def _prepare_all(messages: list[Any], context: IngestContext,
                       results: list[ItemResult | None]) -> list[_Prepared]:
    """Parse and prepare each message; a message in error gets its result here."""
    prepared: list[_Prepared] = []
    salts = await context.services.salts.salts(context.received_day)
    for index, raw in enumerate(messages):
        try:
            prepared.append(_prepare(index, raw, parse_message(raw), context, salts))
        except MessageError as error:
            results[index] = ItemResult(status="error", error=str(error))
        except Exception as error:  # a bug's victim is this message, never its neighbours
            log.exception("message %d of a request could not be prepared", index)
            results[index] = ItemResult(status="error", error=(
                f"the message could not be processed ({type(error).__name__}); "
                f"check its fields' types and sizes"))
    return prepared


def _accept_request(prepared: list[_Prepared], context: IngestContext
                    ) -> tuple[AcceptRequest, int]:
    """The accept script's share of this request, and its dedup window."""
    project = context.client.project_id
    limits = context.rate_limits
    encoder = RowEncoder()
    for item in prepared:
        if item.live_session:
            # the script appends device_id and session_id to the row
            encoder.add_live(item.dedup_token, item.by_id, item.device_id,
                             item.previous_device_id, item.event_ms, item.json_open())
            continue
        if item.table == "events":
            item.row["device_id"] = item.device_id
            # imports: one id per device and half hour; dbt recomputes sessions anyway
            bucket_start = item.event_ms // SESSION_BUCKET_MS * SESSION_BUCKET_MS
            item.row["session_id"] = session_id(project, item.device_id, bucket_start)
        encoder.add_complete(PROFILES if item.table == "profiles" else EVENTS,
                             item.dedup_token, item.by_id, item.json())
    charges = limits.charges(context.client.client_id, context.ip) if limits else ()
    request = AcceptRequest(
        project, context.received_day,  # the salts' day
        tuple(charge.spec for charge in charges),  # one hit per request
        *encoder.encoded())
    window = context.received_ms // (context.services.settings.collector_event_dedup_ttl_s
                                     * 1000)
    return request, window


async def _answer(answer: list[Any], prepared: list[_Prepared], context: IngestContext,
                  results: list[ItemResult | None]) -> None:
    """Each prepared message's result from the accept script's answer; a refused request
    raises (``ApiError`` 429 past a rate limit, ``BacklogFull``)."""
    limits = context.rate_limits
    if answer[0] == -2:
        assert limits is not None
        charges = limits.charges(context.client.client_id, context.ip)
        raise await limits.refusal(charges[int(answer[1]) - 1])
    if answer[0] == -1:
        raise BacklogFull()
    flags, live = answer[0], iter(answer[1:])
    profiles: list[_Prepared] = []  # live profile rows: their answers carry the live session
    for item, flag in zip(prepared, flags, strict=True):
        if item.live_session:
            device, session = next(live).decode(), next(live).decode()
        else:
            device, session = item.device_id, item.row.get("session_id", "")
            if item.table == "profiles" and not context.importing:
                profiles.append(item)
        results[item.index] = ItemResult(status="accepted" if flag == ord("1") else "duplicate",
                                         device_id=device, session_id=session)
    if profiles:
        await _answer_live_sessions(profiles, context, results)


async def _answer_live_sessions(items: list[_Prepared], context: IngestContext,
                                results: list[ItemResult | None]) -> None:
    """The answers of profile messages (identify, increment, group...) carry the device's
    live session, as a track answer would: a read of the session hashes, which these rows
    neither open nor extend. Today's device id first; yesterday's only for a device without
    a live session today (a visit that crossed midnight), as ``buffer.ACCEPT`` decides."""
    services = context.services
    project = context.client.project_id
    idle_ms = services.settings.collector_session_idle_s * 1000
    today, yesterday = session_keys(project, context.received_day)
    waiting = items
    for key, yesterdays in ((today, False), (yesterday, True)):
        devices = [item.previous_device_id if yesterdays else item.device_id
                   for item in waiting]
        values = await services.accept.command(b"HMGET", key, *devices)
        without: list[_Prepared] = []
        for item, device, value in zip(waiting, devices, values, strict=True):
            start = live_session_start(value, item.event_ms, idle_ms)
            result = results[item.index]
            if start is not None and result is not None:
                result.device_id = device
                result.session_id = session_id(project, device, start)
            elif item.previous_device_id:
                without.append(item)
        if not without:
            return
        waiting = without

"""OpenPanel's export API: ``GET /export/events`` and ``GET /export/charts``, in the shapes of
https://openpanel.dev/docs/api/export (docs/read-api.md). Events come from events_current
(stg_events and the rows dbt has not taken yet, under staging's rules: bots and copies out)
and carry their properties (OpenPanel leaves them out unless asked); charts count the same
relation with the dashboards' bucket and filter SQL, as the Events page does."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from queries.base import (
    DISTINCT_DEVICES,
    EVENTS,
    EVENTS_IN_RANGE,
    event_filter_sql,
    mart,
    range_params,
)
from queries.filters import Filter, FilterError, Op, api_field
from queries.periods import BUCKET_SQL, DateRange, Granularity, today_in
from readapi.common import (
    EARLIEST_DAY,
    ReadApiError,
    Reader,
    bad_request,
    check_span,
    parse_day,
)
from readapi.plausible import Project

MAX_LIMIT = 1_000  # OpenPanel's largest page; a larger limit is cut to it, as OpenPanel does
MAX_PAGE = 1_000_000
# The ``includes`` OpenPanel knows. Every event field is always sent here (properties too:
# OpenPanel's users asked for them, its issue #281), so only ``profile`` changes the answer;
# ``meta`` (OpenPanel's event descriptions) has no counterpart and is accepted and left out.
INCLUDES = frozenset({"profile", "meta", "properties", "region", "longitude", "latitude",
                      "osVersion", "browserVersion", "device", "brand", "model", "origin",
                      "referrer", "referrerName", "referrerType", "revenue", "importedAt",
                      "sdkName", "sdkVersion"})

# answer key -> events_current column
EVENT_FIELDS = {
    "id": "toString(event_id)", "name": "event_name", "deviceId": "device_id",
    "profileId": "profile_id", "projectId": "project_id", "sessionId": "live_session_id",
    "properties": "properties", "createdAt": "created_at", "path": "path", "origin": "origin",
    "duration": "duration_ms", "country": "country", "region": "region", "city": "city",
    "longitude": "longitude", "latitude": "latitude", "os": "os", "osVersion": "os_version",
    "browser": "browser", "browserVersion": "browser_version", "device": "device",
    "brand": "brand", "model": "model", "referrer": "referrer", "referrerName": "referrer_name",
    "referrerType": "referrer_type", "revenue": "revenue", "importedAt": "imported_at",
    "sdkName": "sdk_name", "sdkVersion": "sdk_version",
}
_SELECT = ", ".join(f"{column} as `{key}`" for key, column in EVENT_FIELDS.items())


def _values(params: Mapping[str, Sequence[str]], *names: str) -> list[str]:
    """Every value of the first of ``names`` present, repeated or comma-separated, or given as a
    JSON array (``event=["a","b"]``, as OpenPanel's own docs write it)."""
    for name in names:
        found = [*params.get(name, ()), *params.get(f"{name}[]", ())]
        if found:
            values: list[str] = []
            for text in found:
                if text.startswith("["):
                    try:
                        parsed = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        raise bad_request(f"{name} is not a valid JSON array") from None
                    if not isinstance(parsed, list) or not all(isinstance(v, str)
                                                              for v in parsed):
                        raise bad_request(f"{name} must be a list of strings")
                    values.extend(parsed)
                else:
                    values.extend(v for v in text.split(",") if v)
            return values
    return []


def _one(params: Mapping[str, Sequence[str]], *names: str) -> str | None:
    for name in names:
        found = params.get(name)
        if found:
            return found[-1]
    return None


def _int(text: str | None, name: str, default: int) -> int:
    if text is None or text == "":
        return default
    if not re.fullmatch(r"-?\d{1,12}", text.strip()):
        raise bad_request(f"{name} must be a whole number, not {text[:40]!r}")
    return int(text)


def check_project(params: Mapping[str, Sequence[str]], project: Project) -> None:
    """``projectId`` / ``project_id``, when sent, must be the client's own project (a client
    reads its project only; which other projects exist is not told)."""
    named = _one(params, "projectId", "project_id")
    if named is not None and named != project.id:
        raise ReadApiError(403, "You do not have access to this project")


def _day_bounds(params: Mapping[str, Sequence[str]], project: Project, start_key: str,
                end_key: str, default: DateRange) -> DateRange:
    start_text, end_text = _one(params, start_key), _one(params, end_key)
    if start_text is None and end_text is None:
        return default
    start = parse_day(start_text, start_key) if start_text else default.start
    end = parse_day(end_text, end_key) if end_text else default.end
    if end < start:
        raise bad_request(f"{end_key} ({end}) is before {start_key} ({start})")
    return DateRange(start, end, project.timezone)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        text = value.isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z") if text.endswith("+00:00") else text + "Z"
    return value


# ---------------------------------------------------------------------------------------
# /export/events
# ---------------------------------------------------------------------------------------


def export_events(reader: Reader, project: Project, params: Mapping[str, Sequence[str]]
                  ) -> dict[str, Any]:
    """One page of the project's events, newest first, with OpenPanel's ``meta``."""
    check_project(params, project)
    includes = set(_values(params, "includes"))
    unknown = sorted(includes - INCLUDES)
    if unknown:
        raise bad_request(f"unsupported includes value {unknown[0][:40]!r}; supported: "
                          f"{', '.join(sorted(INCLUDES))}")
    page = _int(_one(params, "page"), "page", 1)
    if not 1 <= page <= MAX_PAGE:
        raise bad_request(f"page must be from 1 to {MAX_PAGE}")
    limit = max(1, min(_int(_one(params, "limit"), "limit", 50), MAX_LIMIT))
    # every stored day by default (the collector keeps nothing before 2000, nothing later
    # than a day ahead)
    everything = DateRange(EARLIEST_DAY, today_in(project.timezone) + timedelta(days=1),
                           project.timezone)
    range_name = _one(params, "range")  # OpenPanel's common parameter, as on charts
    if range_name is not None:
        everything = chart_range(range_name, project.timezone)
    date_range = _day_bounds(params, project, "start", "end", everything)
    names = _values(params, "event")
    if len(names) > 100:
        raise bad_request("at most 100 event names")
    profile_id = _one(params, "profileId", "profile_id")
    conditions: list[str] = [EVENTS_IN_RANGE]
    extra: dict[str, Any] = {}
    if names:
        conditions.append("event_name in {names:Array(String)}")
        extra["names"] = names
    if profile_id is not None:
        conditions.append("profile_id = {profile:String}")
        extra["profile"] = profile_id
    where = " and ".join(conditions)
    bound = {**range_params(project.id, date_range), **extra}
    total = reader.rows(f"select count() as n from {mart(EVENTS)} where {where}", bound)[0]["n"]
    rows = reader.rows(
        f"""select {_SELECT} from {mart(EVENTS)} where {where}
        order by created_at desc, event_id limit {{limit:UInt32}} offset {{offset:UInt64}}""",
        {**bound, "limit": limit, "offset": (page - 1) * limit})
    data = [{key: _iso(value) for key, value in row.items()} for row in rows]
    if "profile" in includes:
        profiles = _profiles(reader, project, {r["profileId"] for r in data if r["profileId"]})
        for row in data:
            row["profile"] = profiles.get(row["profileId"])
    return {"meta": {"count": len(data), "totalCount": int(total),
                     "pages": -(-int(total) // limit), "current": page},
            "data": data}


def _profiles(reader: Reader, project: Project, ids: set[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = reader.rows(
        f"""select profile_id, first_name, last_name, email, avatar, properties, first_seen_at
        from {mart('profiles')}
        where project_id = {{project:String}} and profile_id in {{ids:Array(String)}}""",
        {"project": project.id, "ids": sorted(ids)})
    return {r["profile_id"]: {"id": r["profile_id"], "firstName": r["first_name"],
                              "lastName": r["last_name"], "email": r["email"],
                              "avatar": r["avatar"], "properties": r["properties"],
                              "createdAt": _iso(r["first_seen_at"]), "isExternal": True}
            for r in rows}


# ---------------------------------------------------------------------------------------
# /export/charts
# ---------------------------------------------------------------------------------------

# OpenPanel's filter and breakdown names -> the dashboards' filter fields (``properties.x`` ->
# an event property); breakdowns take a fixed column each.
FIELD_NAMES = {"path": "path", "name": "event", "country": "country", "region": "region",
               "city": "city", "device": "device", "browser": "browser", "os": "os",
               "referrer": "referrer", "referrer_name": "referrer_name",
               "referrerName": "referrer_name", "utm_source": "utm_source",
               "utm_medium": "utm_medium", "utm_campaign": "utm_campaign"}
BREAKDOWN_COLUMNS = {"path": "path", "country": "country", "region": "region", "city": "city",
                     "device": "device", "browser": "browser", "os": "os",
                     "referrer": "referrer", "referrer_name": "referrer_name",
                     "referrerName": "referrer_name", "referrer_type": "referrer_type",
                     "referrerType": "referrer_type", "utm_source": "utm_source",
                     "utm_medium": "utm_medium", "utm_campaign": "utm_campaign",
                     "name": "event_name"}
PROPERTY_PREFIX = "properties."
OPERATORS = {"is": Op.IS, "isNot": Op.IS_NOT, "contains": Op.CONTAINS}
SEGMENTS = {"event": "count()", "user": DISTINCT_DEVICES,
            "session": "uniqExact(live_session_id)"}
INTERVALS = {"hour": Granularity.HOUR, "day": Granularity.DAY, "week": Granularity.WEEK,
             "month": Granularity.MONTH}
MAX_SERIES = 10
MAX_BREAKDOWNS = 3
MAX_GROUPS = 100  # breakdown values per series, the largest totals first
MAX_BUCKETS = 5_000


def chart_range(name: str, tz: str, today: date | None = None) -> DateRange:
    """OpenPanel's predefined ranges (the ones of whole days)."""
    today = today or today_in(tz)
    month_start = today.replace(day=1)
    last_month_end = month_start - timedelta(days=1)
    ranges = {
        "today": (today, today), "yesterday": (today - timedelta(days=1),) * 2,
        "7d": (today - timedelta(days=6), today), "30d": (today - timedelta(days=29), today),
        "6m": (today - timedelta(days=182), today), "12m": (today - timedelta(days=364), today),
        "monthToDate": (month_start, today),
        "lastMonth": (last_month_end.replace(day=1), last_month_end),
        "yearToDate": (today.replace(month=1, day=1), today),
        "lastYear": (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
    }
    if name not in ranges:
        raise bad_request(f"unsupported range {name[:40]!r}; supported: {', '.join(ranges)}")
    start, end = ranges[name]
    return DateRange(start, end, tz)


def _json_param(params: Mapping[str, Sequence[str]], name: str) -> Any:
    text = _one(params, name)
    if text is None:
        return None
    if len(text) > 20_000:
        raise bad_request(f"{name} is too long")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise bad_request(f"{name} must be JSON, such as "
                          "[{\"name\":\"screen_view\",\"segment\":\"event\"}]") from None


def _chart_filter(item: Any) -> list[Filter]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise bad_request("a filter looks like {\"name\":\"country\",\"operator\":\"is\","
                          "\"value\":[\"DE\"]}")
    name, operator, values = item["name"], item.get("operator", "is"), item.get("value", [])
    field = api_field(name, PROPERTY_PREFIX, FIELD_NAMES)
    if field is None:
        raise bad_request(f"unsupported filter name {name[:60]!r}; supported: "
                          f"{', '.join(FIELD_NAMES)}, properties.<key>")
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise bad_request(f"unsupported filter operator {str(operator)[:40]!r}; supported: "
                          f"{', '.join(OPERATORS)}")
    if isinstance(values, str | int | float):
        values = [values]
    if not isinstance(values, list) or not values or len(values) > 100:
        raise bad_request(f"the filter on {name} needs a list of 1 to 100 values")
    if operator != "isNot" and len(values) > 1:
        raise bad_request(f"an {operator} filter takes one value here")
    try:
        return [Filter(field, OPERATORS[operator], str(v)) for v in values]
    except FilterError as error:
        raise bad_request(str(error)) from None


@dataclass(frozen=True)
class Series:
    name: str
    segment: str
    filters: tuple[Filter, ...]


def _series(value: Any) -> list[Series]:
    if not isinstance(value, list) or not value or len(value) > MAX_SERIES:
        raise bad_request(f"series (or events) must be a list of 1 to {MAX_SERIES} "
                          "{\"name\": ...} objects")
    result = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise bad_request("each series item needs a name (an event name, or * for all)")
        segment = item.get("segment", "event")
        if not isinstance(segment, str) or segment not in SEGMENTS:
            raise bad_request(f"unsupported segment {str(segment)[:40]!r}; supported: "
                              f"{', '.join(SEGMENTS)}")
        raw_filters = item.get("filters") or []
        if not isinstance(raw_filters, list) or len(raw_filters) > 20:
            raise bad_request("filters must be a list of at most 20 filters")
        filters = tuple(f for raw in raw_filters for f in _chart_filter(raw))
        result.append(Series(item["name"], segment, filters))
    return result


def _breakdowns(value: Any) -> list[tuple[str, str, dict[str, str]]]:
    """(name, column expression, its parameters) of each breakdown."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_BREAKDOWNS:
        raise bad_request(f"breakdowns must be a list of at most {MAX_BREAKDOWNS} "
                          "{\"name\": ...} objects")
    found = []
    for index, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise bad_request("each breakdown looks like {\"name\":\"country\"}")
        if name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX):
            key = f"bk{index}"
            found.append((name, f"properties[{{{key}:String}}]",
                          {key: name[len(PROPERTY_PREFIX):]}))
        elif name in BREAKDOWN_COLUMNS:
            found.append((name, BREAKDOWN_COLUMNS[name], {}))
        else:
            raise bad_request(f"unsupported breakdown {name[:60]!r}; supported: "
                              f"{', '.join(BREAKDOWN_COLUMNS)}, properties.<key>")
    return found


def _counts(reader: Reader, project: Project, series: Series, date_range: DateRange,
            granularity: Granularity, breakdowns: list[tuple[str, str, dict[str, str]]]
            ) -> dict[tuple[str, ...], dict[str, int]]:
    """{breakdown values: {bucket text: figure}} of one series over one range."""
    where = event_filter_sql(series.filters)
    bucket = BUCKET_SQL[granularity].format(column="created_at")
    named = "" if series.name == "*" else "and event_name = {series_name:String}"
    groups = "".join(f", toString({column}) as b{i}" for i, (_, column, _) in
                     enumerate(breakdowns))
    group_by = "".join(f", b{i}" for i in range(len(breakdowns)))
    params: dict[str, Any] = {**range_params(project.id, date_range), **where.params,
                              "series_name": series.name}
    for _, _, extra in breakdowns:
        params.update(extra)
    rows = reader.rows(
        f"""select toString({bucket}) as bucket{groups}, {SEGMENTS[series.segment]} as n
        from {mart(EVENTS)}
        where {EVENTS_IN_RANGE} {named} and {where.sql}
        group by bucket{group_by}""", params)
    result: dict[tuple[str, ...], dict[str, int]] = {}
    for row in rows:
        key = tuple(row[f"b{i}"] for i in range(len(breakdowns)))
        result.setdefault(key, {})[row["bucket"]] = int(row["n"])
    return result


def _change(current: float, previous: float) -> float | None:
    return round((current - previous) / previous * 100, 2) if previous else None


def _figures(values: list[int]) -> dict[str, Any]:
    return {"sum": sum(values), "average": round(sum(values) / len(values), 2) if values else 0,
            "min": min(values, default=0), "max": max(values, default=0)}


def _slug(parts: Sequence[str]) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") or "none" for p in parts)


def export_charts(reader: Reader, project: Project, params: Mapping[str, Sequence[str]]
                  ) -> dict[str, Any]:
    """Counts per interval of each series (and breakdown values), OpenPanel's chart shape."""
    check_project(params, project)
    raw_series = _json_param(params, "series")
    if raw_series is None:
        raw_series = _json_param(params, "events")
    if raw_series is None:
        raise bad_request("series (or events) is required, such as "
                          "[{\"name\":\"screen_view\",\"segment\":\"user\"}]")
    series = _series(raw_series)
    breakdowns = _breakdowns(_json_param(params, "breakdowns"))
    interval = _one(params, "interval") or "day"
    if interval not in INTERVALS:
        raise bad_request(f"unsupported interval {interval[:40]!r}; supported: "
                          f"{', '.join(INTERVALS)}")
    granularity = INTERVALS[interval]
    range_name = _one(params, "range")
    default = chart_range(range_name or "7d", project.timezone)
    date_range = _day_bounds(params, project, "startDate", "endDate", default)
    check_span(date_range.start, date_range.end)
    buckets = date_range.buckets(granularity)
    if len(buckets) > MAX_BUCKETS:
        raise bad_request(f"{len(buckets)} {interval}s: at most {MAX_BUCKETS} points; choose "
                          "a larger interval or a shorter range")
    previous_wanted = (_one(params, "previous") or "").lower() in ("true", "1", "yes")
    previous_range = date_range.previous()
    zone = ZoneInfo(project.timezone)
    labels = [str(b) for b in buckets]
    previous_labels = [str(b) for b in previous_range.buckets(granularity)]
    answer_series: list[dict[str, Any]] = []
    every_point: list[int] = []
    previous_totals: list[int] = []
    for index, item in enumerate(series):
        current = _counts(reader, project, item, date_range, granularity, breakdowns)
        before = (_counts(reader, project, item, previous_range, granularity, breakdowns)
                  if previous_wanted else {})
        if not breakdowns and not current:
            current = {(): {}}
        ranked = sorted(current.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        for key, counts in ranked[:MAX_GROUPS]:
            values = [counts.get(label, 0) for label in labels]
            earlier = before.get(key, {})
            previous_values = [earlier.get(label, 0) for label in previous_labels]
            data = []
            for position, (bucket, value) in enumerate(zip(buckets, values, strict=True)):
                point: dict[str, Any] = {
                    "date": _iso(bucket.to_pydatetime().replace(tzinfo=zone).astimezone(
                        ZoneInfo("UTC"))),
                    "count": value}
                if previous_wanted:
                    old = previous_values[position] if position < len(previous_values) else 0
                    point["previous"] = {"value": old, "change": _change(value, old)}
                data.append(point)
            metrics = _figures(values)
            if previous_wanted:
                old_figures = _figures(previous_values)
                metrics["previous"] = {
                    name: {"value": old_figures[name],
                           "change": _change(metrics[name], old_figures[name])}
                    for name in ("sum", "average", "min", "max")}
                previous_totals.extend(previous_values)
            names = [item.name, *key]
            answer_series.append({"id": _slug(names), "names": names,
                                  "event": {"id": str(index), "name": item.name},
                                  "metrics": metrics, "data": data})
            every_point.extend(values)
    overall = _figures(every_point)
    if previous_wanted:
        before_all = _figures(previous_totals)
        overall["previous"] = {name: {"value": before_all[name],
                                      "change": _change(overall[name], before_all[name])}
                               for name in ("sum", "average", "min", "max")}
    return {"series": answer_series, "metrics": overall}

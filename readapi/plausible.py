"""Plausible's Stats API v2 (``POST /api/v2/query``), the subset Trackhouse answers.

A query names metrics, a date range, dimensions and filters; the answer is
``{"results": [{"metrics": [...], "dimensions": [...]}], "meta": {}, "query": {...}}``
(https://plausible.io/docs/stats-api). Figures come from the dashboards' relations with
the dashboards' SQL fragments, so they equal what the overview page shows:

- visitors, page views and events are event figures (events_current, or without filters the
  day states of daily_visitor_states_current / daily_page_states_current, as the overview);
- visits, bounce rate and visit duration are session figures (the sessions mart, under
  ``session_filter_sql``), and views per visit is page views over visits, as the overview's
  "views per session";
- under a ``visit:`` dimension every metric is a session figure (a session's source, country,
  device ... are those of its first event), as the overview's breakdown tiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from queries.base import (
    DISTINCT_DEVICES,
    EVENTS,
    EVENTS_IN_RANGE,
    MERGED_VISITORS,
    SESSIONS_IN_RANGE,
    event_filter_sql,
    mart,
    range_params,
    session_filter_sql,
    visitor_states,
)
from queries.filters import Filter, FilterError, Op, SqlFragment, api_field, split_by_level
from queries.overview import SESSION_DIMENSIONS
from queries.periods import DateRange, Preset, preset_range
from readapi.common import Reader, bad_request, check_span, parse_day

METRICS = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
           "visit_duration", "events")
# metrics that need the session tables (views per visit divides page views by visits)
SESSION_METRICS = frozenset({"visits", "views_per_visit", "bounce_rate", "visit_duration"})
EVENT_METRICS = frozenset({"visitors", "pageviews", "events", "views_per_visit"})

MAX_LIMIT = 10_000  # Plausible's own largest page


@dataclass(frozen=True)
class Dimension:
    kind: str  # "time" | "event" | "visit"
    events_sql: str | None  # the expression on events_current (None: no event figure)
    sessions_sql: str | None  # the expression on the sessions mart (None: no session figure)
    states_sql: str | None = None  # on daily_visitor_states_current / daily_page_states_current


_VISIT_COLUMNS = {"source": SESSION_DIMENSIONS["referrer_name"], "country": "country",
                  "device": "device", "browser": "browser", "os": "os",
                  "utm_source": "utm_source", "utm_medium": "utm_medium",
                  "utm_campaign": "utm_campaign"}
DIMENSIONS: dict[str, Dimension] = {
    "time:day": Dimension("time", "toString(toDate(created_at, {tz:String}))", "toString(day)",
                          "toString(day)"),
    "time:hour": Dimension("time", "toString(toStartOfHour(created_at, {tz:String}))",
                           "toString(toStartOfHour(started_at, {tz:String}))"),
    "event:page": Dimension("event", "path", None, "path"),
    "event:name": Dimension("event", "event_name", None),
    **{f"visit:{name}": Dimension("visit", None, sql) for name, sql in _VISIT_COLUMNS.items()},
}
# Like the overview's tiles, a visit without a UTM value is left out of that breakdown.
_SKIP_EMPTY = {"visit:utm_source", "visit:utm_medium", "visit:utm_campaign"}

# Plausible's filter dimensions -> the dashboards' filter fields (queries/filters.py).
FILTER_FIELDS = {"event:page": "path", "event:name": "event", "visit:source": "referrer_name",
                 "visit:referrer": "referrer", "visit:country": "country",
                 "visit:region": "region", "visit:city": "city", "visit:device": "device",
                 "visit:browser": "browser", "visit:os": "os", "visit:utm_source": "utm_source",
                 "visit:utm_medium": "utm_medium", "visit:utm_campaign": "utm_campaign"}
PROPS_PREFIX = "event:props:"
DATE_RANGES = {"day": Preset.TODAY, "7d": Preset.LAST_7_DAYS, "30d": Preset.LAST_30_DAYS,
               "month": Preset.MONTH_TO_DATE}
INCLUDES = {"total_rows", "imports", "time_labels"}
QUERY_KEYS = {"site_id", "metrics", "date_range", "dimensions", "filters", "order_by",
              "include", "pagination"}


@dataclass(frozen=True)
class Project:
    id: str
    timezone: str


@dataclass(frozen=True)
class Query:
    site_id: str
    metrics: tuple[str, ...]
    date_range: DateRange
    dimensions: tuple[str, ...]
    filters: tuple[Filter, ...]
    raw_filters: list[Any]
    order_by: tuple[tuple[str, str], ...]
    include: dict[str, bool]
    limit: int
    offset: int


# ---------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------


def _names(body: dict[str, Any], key: str, allowed: Any, what: str, *,
           required: bool) -> tuple[str, ...]:
    value = body.get(key, [] if not required else None)
    if not isinstance(value, list) or (required and not value):
        raise bad_request(f"{key} must be a {'non-empty ' if required else ''}list of {what}")
    for item in value:
        if not isinstance(item, str):
            raise bad_request(f"{key} must be a list of {what} (strings)")
        if item not in allowed:
            raise bad_request(f"unsupported {what[:-1]} {item[:100]!r}; supported: "
                              f"{', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise bad_request(f"{key} names an item twice")
    return tuple(value)


def parse_date_range(value: Any, tz: str, today: date | None = None) -> DateRange:
    if isinstance(value, str):
        if value not in DATE_RANGES:
            raise bad_request(f"unsupported date_range {value[:40]!r}; use one of "
                              f"{', '.join(DATE_RANGES)} or [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]")
        return preset_range(DATE_RANGES[value], tz, today)
    if not isinstance(value, list) or len(value) != 2:
        raise bad_request("date_range must be day, 7d, 30d, month or a list of two dates")
    if any(isinstance(v, str) and len(v) > 10 for v in value):
        raise bad_request("date_range takes whole days (YYYY-MM-DD); date-time ranges are not "
                          "supported")
    start, end = parse_day(value[0], "date_range[0]"), parse_day(value[1], "date_range[1]")
    check_span(start, end)
    return DateRange(start, end, tz)


def _filter(item: Any) -> list[Filter]:
    """One Plausible filter ``[op, dimension, [values]]`` as the dashboards' filters: ``is``
    and ``contains`` take one value, ``is_not`` any number (none of them)."""
    if (not isinstance(item, list) or len(item) not in (3, 4) or not isinstance(item[0], str)
            or not isinstance(item[1], str)):
        raise bad_request("a filter looks like [\"is\", \"visit:country\", [\"DE\"]]")
    op, dimension, values = item[0], item[1], item[2]
    if op not in ("is", "is_not", "contains"):
        raise bad_request(f"unsupported filter operator {op[:40]!r}; supported: is, is_not, "
                          "contains")
    field = api_field(dimension, PROPS_PREFIX, FILTER_FIELDS)
    if field is None:
        raise bad_request(f"unsupported filter dimension {dimension[:100]!r}; supported: "
                          f"{', '.join(FILTER_FIELDS)}, event:props:<key>")
    if (not isinstance(values, list) or not values
            or not all(isinstance(v, str | int | float) and not isinstance(v, bool)
                       for v in values)):
        raise bad_request(f"the values of a filter on {dimension} must be a non-empty list of "
                          "strings")
    if op != "is_not" and len(values) > 1:
        raise bad_request(f"an {op} filter takes one value here (got {len(values)}); send one "
                          "query per value")
    if len(values) > 100:
        raise bad_request("a filter takes at most 100 values")
    try:
        return [Filter(field, Op(op), str(v)) for v in values]
    except FilterError as error:
        raise bad_request(str(error)) from None


def parse_query(body: Any, project: Project, today: date | None = None) -> Query:
    """A Stats API v2 query body as a ``Query``; ``ReadApiError(400)`` naming what is wrong."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object (a Stats API v2 query)")
    unknown = sorted(set(body) - QUERY_KEYS)
    if unknown:
        raise bad_request(f"unsupported query key {unknown[0][:40]!r}")
    site_id = body.get("site_id")
    if not isinstance(site_id, str) or not site_id:
        raise bad_request("site_id is required: the project's Plausible domain or its id")
    metrics = _names(body, "metrics", METRICS, "metrics", required=True)
    dimensions = _names(body, "dimensions", DIMENSIONS, "dimensions", required=False)
    if "date_range" not in body:
        raise bad_request("date_range is required")
    date_range = parse_date_range(body["date_range"], project.timezone, today)
    raw_filters = body.get("filters", [])
    if not isinstance(raw_filters, list) or len(raw_filters) > 20:
        raise bad_request("filters must be a list of at most 20 filters")
    filters = tuple(f for item in raw_filters for f in _filter(item))
    _check_combination(metrics, dimensions, filters)
    order_by = _order_by(body.get("order_by"), metrics, dimensions)
    include = body.get("include", {})
    if not isinstance(include, dict) or not set(include) <= INCLUDES:
        raise bad_request(f"include takes {', '.join(sorted(INCLUDES))}")
    pagination = body.get("pagination", {})
    if not isinstance(pagination, dict) or not set(pagination) <= {"limit", "offset"}:
        raise bad_request("pagination looks like {\"limit\": 100, \"offset\": 0}")
    limit, offset = pagination.get("limit", MAX_LIMIT), pagination.get("offset", 0)
    if (not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT):
        raise bad_request(f"pagination.limit must be an integer from 1 to {MAX_LIMIT}")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= 10**9:
        raise bad_request("pagination.offset must be a non-negative integer")
    return Query(site_id, metrics, date_range, dimensions, filters, raw_filters, order_by,
                 {k: bool(v) for k, v in include.items()}, limit, offset)


# Under a visit: dimension these come from the sessions' own counts: every event of a session,
# not only those a page, event-name or property filter matches, so such filters refuse them.
SESSION_COUNTS = ("pageviews", "events", "views_per_visit")


def _check_combination(metrics: tuple[str, ...], dimensions: tuple[str, ...],
                       filters: tuple[Filter, ...]) -> None:
    kinds = {DIMENSIONS[d].kind: d for d in dimensions}
    counts = [m for m in metrics if m in SESSION_COUNTS]
    if "visit" in kinds and counts and split_by_level(filters)[1]:
        raise bad_request(f"metric {counts[0]} under the visit dimension {kinds['visit']} "
                          "cannot be combined with page, event-name or event-property filters")
    if "event" in kinds and "visit" in kinds:
        raise bad_request(f"dimension {kinds['event']} cannot be combined with "
                          f"{kinds['visit']}: event and visit dimensions are counted apart")
    session_metrics = [m for m in metrics if m in SESSION_METRICS]
    if "event" in kinds and session_metrics:
        raise bad_request(f"session metric {session_metrics[0]} cannot be broken down by the "
                          f"event dimension {kinds['event']}")
    if sum(1 for d in dimensions if DIMENSIONS[d].kind == "time") > 1:
        raise bad_request("one time dimension at most")


def _order_by(value: Any, metrics: tuple[str, ...], dimensions: tuple[str, ...]
              ) -> tuple[tuple[str, str], ...]:
    if value is None:
        times = [d for d in dimensions if d.startswith("time:")]
        # Plausible's default: by time when broken down by time, else by the first metric
        return ((times[0], "asc"),) if times else ((metrics[0], "desc"),)
    if not isinstance(value, list) or not value:
        raise bad_request("order_by looks like [[\"visitors\", \"desc\"]]")
    result = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or item[1] not in ("asc", "desc")
                or item[0] not in (*metrics, *dimensions)):
            raise bad_request("order_by items are [metric or dimension of this query, "
                              "\"asc\" | \"desc\"]")
        result.append((item[0], item[1]))
    return tuple(result)


# ---------------------------------------------------------------------------------------
# statements
# ---------------------------------------------------------------------------------------


def _group(exprs: list[str]) -> tuple[str, str]:
    """(select list of the dimensions as d0, d1, ..., group by clause)."""
    if not exprs:
        return "", ""
    select = "".join(f"{e} as d{i}, " for i, e in enumerate(exprs))
    return select, "group by " + ", ".join(f"d{i}" for i in range(len(exprs)))


def _key(row: dict[str, Any], count: int) -> tuple[str, ...]:
    return tuple(str(row[f"d{i}"]) for i in range(count))


# the figures each metric is computed from
NEEDS = {"visitors": ("visitors",), "visits": ("visits",), "pageviews": ("pageviews",),
         "events": ("events",), "bounce_rate": ("visits", "bounces"),
         "visit_duration": ("visits", "duration_s"), "views_per_visit": ("pageviews", "visits")}


def _wanted(query: Query, figures: dict[str, str]) -> str:
    """The select list of the figures the query's metrics need (the rest as 0): a figure
    nobody asked for costs nothing (distinct visitors are the expensive one)."""
    needed = {figure for metric in query.metrics for figure in NEEDS[metric]}
    return ", ".join(f"{sql if name in needed else '0'} as {name}"
                     for name, sql in figures.items())


def event_rows(reader: Reader, project: Project, query: Query) -> list[dict[str, Any]]:
    """Visitors, page views and events per dimension values, from the overview's tables: the
    day states without filters (visitors, page views; per day or per page) or, per day or in
    all, under filters on one event field over more than a week (``visitor_states``), else
    events_current."""
    params = range_params(project.id, query.date_range)
    dims = [DIMENSIONS[d] for d in query.dimensions]
    states: tuple[str, SqlFragment] | None = None
    if "events" not in query.metrics and all(d.states_sql for d in dims):
        if query.dimensions == ("event:page",) and not query.filters:
            states = mart("daily_page_states_current"), SqlFragment.true()
        elif all(d.kind == "time" for d in dims):
            states = visitor_states(query.filters, query.date_range.days)
    if states is not None:
        table, matching = states
        select, group = _group([d.states_sql for d in dims])  # type: ignore[misc]
        wanted = _wanted(query, {"visitors": MERGED_VISITORS,
                                 "pageviews": "sum(pageviews)"})
        return reader.rows(
            f"""select {select}{wanted}
            from {table} where {SESSIONS_IN_RANGE} and {matching.sql} {group}""",
            {**params, **matching.params})
    where = event_filter_sql(query.filters)
    select, group = _group([d.events_sql for d in dims])  # type: ignore[misc]
    # a page breakdown counts page views, as the overview's top pages
    pages_only = "and is_pageview" if "event:page" in query.dimensions else ""
    wanted = _wanted(query, {"visitors": DISTINCT_DEVICES, "pageviews": "countIf(is_pageview)",
                             "events": "count()"})
    return reader.rows(
        f"""select {select}{wanted}
        from {mart(EVENTS)}
        where {EVENTS_IN_RANGE} {pages_only} and {where.sql} {group}""",
        {**params, **where.params})


def session_rows(reader: Reader, project: Project, query: Query) -> list[dict[str, Any]]:
    """Visits, bounces and duration per dimension values (with visitors, page views and
    events of those sessions, for ``visit:`` breakdowns), from the sessions mart under
    ``session_filter_sql``."""
    where = session_filter_sql(query.filters)
    figures = {"visits": "count()", "bounces": "countIf(is_bounce)",
               "duration_s": "sum(toFloat64(duration_s))"}
    if any(DIMENSIONS[d].kind == "visit" for d in query.dimensions):
        figures["visitors"] = DISTINCT_DEVICES
        if not split_by_level(query.filters)[1]:  # (SESSION_COUNTS)
            figures.update(pageviews="sum(pageviews)", events="sum(events)")
    exprs = [DIMENSIONS[d].sessions_sql for d in query.dimensions]
    select, group = _group(exprs)  # type: ignore[arg-type]
    skip = "".join(f" and d{i} != ''" for i, d in enumerate(query.dimensions)
                   if d in _SKIP_EMPTY)
    return reader.rows(
        f"""select {select}{_wanted(query, figures)}
        from {mart("sessions")}
        where {SESSIONS_IN_RANGE}{skip} and {where.sql} {group}""",
        {**range_params(project.id, query.date_range), **where.params})


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _metric(name: str, figures: dict[str, Any]) -> int | float:
    visits = figures.get("visits", 0)
    if name == "bounce_rate":  # a whole percentage, as Plausible answers it
        return round(100 * _ratio(figures.get("bounces", 0), visits))
    if name == "visit_duration":  # whole seconds
        return round(_ratio(figures.get("duration_s", 0.0), visits))
    if name == "views_per_visit":
        return round(_ratio(figures.get("pageviews", 0), visits), 2)
    return int(figures.get(name, 0))


def run_query(reader: Reader, project: Project, query: Query) -> dict[str, Any]:
    """Answer a parsed query in Plausible's response shape."""
    count = len(query.dimensions)
    merged: dict[tuple[str, ...], dict[str, Any]] = {}
    visit_mode = any(DIMENSIONS[d].kind == "visit" for d in query.dimensions)
    Fetch = Callable[[Reader, Project, Query], list[dict[str, Any]]]
    sources: list[tuple[Fetch, tuple[str, ...] | None]] = []
    if visit_mode:  # every figure of a session dimension is a figure of its sessions
        sources.append((session_rows, None))
    else:
        if set(query.metrics) & EVENT_METRICS:
            sources.append((event_rows, ("visitors", "pageviews", "events")))
        if set(query.metrics) & SESSION_METRICS:
            sources.append((session_rows, ("visits", "bounces", "duration_s")))
    for fetch, taken in sources:
        for row in fetch(reader, project, query):
            figures = merged.setdefault(_key(row, count), {})
            for name in taken or ("visitors", "visits", "pageviews", "events", "bounces",
                                  "duration_s"):
                figures[name] = row.get(name, 0)
    if not count and not merged:
        merged[()] = {}
    results = [{"metrics": [_metric(m, figures) for m in query.metrics],
                "dimensions": list(key)} for key, figures in merged.items()]
    results = _sorted(results, query)
    meta: dict[str, Any] = {}
    if query.include.get("total_rows"):
        meta["total_rows"] = len(results)
    if query.include.get("time_labels"):
        meta["time_labels"] = time_labels(query)
    return {"results": results[query.offset:query.offset + query.limit], "meta": meta,
            "query": echo(query)}


def _sorted(results: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    # stable sorts, last key first; ties end in dimension order for a deterministic page
    results.sort(key=lambda r: r["dimensions"])
    for name, direction in reversed(query.order_by):
        part = "metrics" if name in query.metrics else "dimensions"
        index = (query.metrics if part == "metrics" else query.dimensions).index(name)

        def value(row: dict[str, Any], part: str = part, index: int = index) -> Any:
            return row[part][index]

        results.sort(key=value, reverse=direction == "desc")
    return results


def time_labels(query: Query) -> list[str]:
    day, labels = query.date_range.start, list[str]()
    hourly = "time:hour" in query.dimensions
    while day <= query.date_range.end:
        if hourly:
            labels.extend(f"{day} {hour:02d}:00:00" for hour in range(24))
        else:
            labels.append(day.isoformat())
        day += timedelta(days=1)
    return labels


def echo(query: Query) -> dict[str, Any]:
    """The query as answered (Plausible echoes it with the range resolved to instants)."""
    zone = ZoneInfo(query.date_range.tz)
    start = datetime.combine(query.date_range.start, time(), zone)
    end = datetime.combine(query.date_range.end, time(23, 59, 59), zone)
    return {"site_id": query.site_id, "metrics": list(query.metrics),
            "date_range": [start.isoformat(), end.isoformat()],
            "filters": query.raw_filters, "dimensions": list(query.dimensions),
            "order_by": [list(item) for item in query.order_by],
            "include": query.include,
            "pagination": {"limit": query.limit, "offset": query.offset}}


def now_utc() -> datetime:
    return datetime.now(UTC)

"""What every query shares: the one warehouse client, table names, the range and filter SQL.

Queries are functions of plain, hashable arguments (project id, ``DateRange``, a tuple of
``Filter``), so a result cache (``queries.cache``) can key on them; the SQL is written by hand
with ClickHouse server-side parameters (``{name:Type}``) and never formats user input into the text.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from queries.filters import (
    FIELDS,
    Filter,
    Op,
    SqlFragment,
    compile_filters,
    one_event_field,
    split_by_level,
)
from queries.periods import DateRange
from trackhouse.settings import get_settings
from warehouse.client import warehouse

# Marts change when dbt runs (minutes); figures that read the *_current views are near real time.
MART_TTL_S = 300
RAW_TTL_S = 60
REALTIME_TTL_S = 5

# Distinct visitors of event or session rows: an exact distinct count of the 64-bit device key
# the models store (cityHash64(project_id, device_id)), so no query hashes the device id string
# again (docs/decisions/0041). Two devices collide with probability ~n^2/2^65: below 1e-7 at a
# million devices a range.
DISTINCT_DEVICES = "uniqExact(device_key)"
# Distinct visitors of the rows of a per-day state mart (daily_visitor_states_current,
# daily_page_states_current): their bitmaps of device numbers merged.
MERGED_VISITORS = "groupBitmapMerge(visitors_state)"

@functools.cache
def client() -> Client:
    """The process-wide warehouse client (clickhouse-connect is safe across threads)."""
    return warehouse()


def mart(name: str) -> str:
    """A relation dbt owns in the analytics database: the only tables the dashboards read
    (every rule of what counts lives in the dbt project; tests/app/test_dbt_only.py)."""
    return f"{get_settings().analytics_database}.{name}"


# Every counted event, current to the last stored batch (stg_events plus the raw rows dbt has
# not taken yet, under staging's rules).
EVENTS = "events_current"


class TableMissing(RuntimeError):
    """A mart (or the raw schema) does not exist yet: dbt or the migrations have not run."""


def run(sql: str, params: dict[str, Any] | None = None,
        columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run one query with server-side parameters and return its rows as a DataFrame.

    ``columns`` names the columns of an empty result (an empty answer may carry no header).
    """
    try:
        result = client().query(sql, parameters=params or {})
    except DatabaseError as error:
        if "UNKNOWN_TABLE" in str(error) or "UNKNOWN_DATABASE" in str(error):
            raise TableMissing(str(error).split("(UNKNOWN_")[0][:300]) from error
        raise
    if not result.column_names:
        return pd.DataFrame(columns=list(columns))
    return pd.DataFrame(dict(zip(result.column_names, result.result_columns, strict=True)),
                        columns=list(result.column_names))


def range_params(project_id: str, date_range: DateRange) -> dict[str, Any]:
    start, end = date_range.utc_bounds()
    return {"project": project_id, "start": start, "end": end, "start_day": date_range.start,
            "end_day": date_range.end, "tz": date_range.tz}


# Events of the project inside the range (events_current: the created_at bounds prune its
# weekly partitions).
EVENTS_IN_RANGE = (
    "project_id = {project:String} "
    "and created_at >= {start:DateTime64(3, 'UTC')} and created_at < {end:DateTime64(3, 'UTC')}"
)
# Sessions whose project day (day of started_at in the project's zone) is inside the range.
SESSIONS_IN_RANGE = (
    "project_id = {project:String} and day between {start_day:Date} and {end_day:Date}"
)


def event_filter_sql(filters: tuple[Filter, ...]) -> SqlFragment:
    """Filters on events_current: every field is a column of the event itself."""
    return compile_filters(filters, prefix="ef")


# The arrays of the sessions mart that hold, aligned, a session's distinct events:
# the event column an event-level filter compares -> the array of that column's values.
SESSION_CONTENT_ARRAYS = {"event_name": "event_names", "path": "paths",
                          "properties": "event_properties"}


# An event name or property value as the sessions' event_value_keys hold it (the dbt macro
# event_value_key): the field as filters name it (`event`, `prop:<key>`), then the value.
EVENT_VALUE_KEY = "cityHash64({field}, {value})"


def _one_event_value(event_level: tuple[Filter, ...]) -> Filter | None:
    """The filter, when the event-level filters are one "is" condition on the event name or on
    a property, that the value states could answer too (``one_event_field``: "is ''" on a
    property also keeps events lacking it); paths have no keys."""
    if len(event_level) != 1 or event_level[0].op is not Op.IS:
        return None
    return event_level[0] if one_event_field(event_level) not in (None, "path") else None


def _event_column(item: Filter) -> str:
    return "properties" if item.property_key is not None else FIELDS[item.field].column


def session_filter_sql(filters: tuple[Filter, ...]) -> SqlFragment:
    """The condition on the ``sessions`` mart's rows under ``filters`` (what the session
    figures and breakdowns add to their range).

    Session fields compare with the session's own columns (those of its first event). Event
    fields (path, event name, properties) keep the sessions that contain a matching event:
    one ``arrayExists`` over the session's distinct events (aligned arrays), whose lambda
    takes the event column names, finds an element matching every event filter at once. One
    "is" condition on the event name or a property (``_one_event_value``) instead looks its
    hashed (field, value) up in the session's ``event_value_keys``: a few numbers per session.
    """
    session_level, event_level = split_by_level(filters)
    direct = compile_filters(session_level, prefix="sf")
    if not event_level:
        return direct
    one_value = _one_event_value(event_level)
    if one_value is not None:  # a membership test of a few numbers (docs/decisions/0044)
        key = EVENT_VALUE_KEY.format(field="{sef_field:String}", value="{sef_value:String}")
        return SqlFragment(
            f"{direct.sql} and has(event_value_keys, {key})",
            {**direct.params, "sef_field": one_value.field, "sef_value": one_value.value})
    matching = compile_filters(event_level, prefix="sef")
    columns = [c for c in SESSION_CONTENT_ARRAYS if c in {_event_column(f) for f in event_level}]
    contains = (f"arrayExists(({', '.join(columns)}) -> {matching.sql}, "
                f"{', '.join(SESSION_CONTENT_ARRAYS[c] for c in columns)})")
    return SqlFragment(f"{direct.sql} and {contains}", {**direct.params, **matching.params})


# Filtered ranges of at most this many days scan events_current: the value states' open days
# cost about what scanning two weeks does (docs/decisions/0042).
VALUE_STATES_MAX_SCAN_DAYS = 7


def visitor_states(filters: tuple[Filter, ...], days: int) -> tuple[str, SqlFragment] | None:
    """The per-day state view whose rows, merged, give the visitors and page views of the
    events matching ``filters`` over a range of ``days`` (and the period before it), and the
    condition on its rows; None when events_current answers (the table decider of the event
    figures).

    No filters: daily_visitor_states_current, every row. Filters on one event field
    (``one_event_field``) over a range longer than VALUE_STATES_MAX_SCAN_DAYS:
    daily_event_value_states_current, the rows of that field whose value matches, compared by
    the same filter compiler.
    """
    if not filters:
        return mart("daily_visitor_states_current"), SqlFragment.true()
    field = one_event_field(filters)
    if field is None or days <= VALUE_STATES_MAX_SCAN_DAYS:
        return None
    values = compile_filters(filters, prefix="vf", column="value")
    return mart("daily_event_value_states_current"), SqlFragment(
        f"field = {{vf_field:String}} and {values.sql}", {"vf_field": field, **values.params})

"""Profiles: search, traits (the ``profiles`` mart) and a profile's event timeline
(events_current)."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from queries.base import EVENTS, MART_TTL_S, RAW_TTL_S, mart, run
from queries.cache import cached


@cached(MART_TTL_S)
def search_profiles(project_id: str, text: str = "", limit: int = 50) -> pd.DataFrame:
    """Profiles whose id, e-mail or name contains ``text`` (all of them when empty)."""
    return run(
        f"""select profile_id, email, first_name, last_name, first_seen_at, last_seen_at, events
        from {mart('profiles')}
        where project_id = {{project:String}}
          and ({{text:String}} = ''
               or positionCaseInsensitiveUTF8(profile_id, {{text:String}}) > 0
               or positionCaseInsensitiveUTF8(ifNull(email, ''), {{text:String}}) > 0
               or positionCaseInsensitiveUTF8(concat(ifNull(first_name, ''), ' ',
                                                     ifNull(last_name, '')), {{text:String}}) > 0)
        order by last_seen_at desc, profile_id limit {{limit:UInt32}}""",
        {"project": project_id, "text": text, "limit": limit},
        columns=("profile_id", "email", "first_name", "last_name", "first_seen_at",
                 "last_seen_at", "events"),
    )


@cached(MART_TTL_S)
def profile(project_id: str, profile_id: str) -> dict[str, Any] | None:
    """One profile's traits and counters as JSON values with their types (``traits_json``),
    or None."""
    frame = run(
        f"""select * except (project_id, last_received_at) from {mart('profiles')}
        where project_id = {{project:String}} and profile_id = {{profile:String}} limit 1""",
        {"project": project_id, "profile": profile_id},
    )
    return None if frame.empty else traits_json(frame.iloc[0].to_dict())


# A property value the collector stored from a JSON number or boolean (collector/ingest.py
# writes them as their JSON text): shown as that number or boolean again.
_JSON_SCALAR = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false")


def traits_json(row: dict[str, Any]) -> dict[str, Any]:
    """A mart row as JSON values: NULL as null, counts as numbers, times as ISO 8601 text,
    the properties map as an object whose numeric and boolean values are numbers and
    booleans again."""
    return {key: _json_value(value, is_property=False) for key, value in row.items()}


def _json_value(value: Any, is_property: bool) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_value(v, is_property=True) for k, v in value.items()}
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime):  # pandas Timestamps too
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Decimal):
        return float(value)
    if is_property and isinstance(value, str) and _JSON_SCALAR.fullmatch(value):
        return json.loads(value)
    return value


@cached(RAW_TTL_S)
def profile_timeline(project_id: str, profile_id: str, limit: int = 200) -> pd.DataFrame:
    """The profile's latest events, newest first."""
    return run(
        f"""select created_at, event_name as name, path, properties, country, browser, device
        from {mart(EVENTS)}
        where project_id = {{project:String}} and profile_id = {{profile:String}}
        order by created_at desc limit {{limit:UInt32}}""",
        {"project": project_id, "profile": profile_id, "limit": limit},
        columns=("created_at", "name", "path", "properties", "country", "browser", "device"),
    )

"""Generated exports in their tools' real formats: GA4's BigQuery export (NDJSON with INT64
as strings, or Parquet) and OpenPanel's ClickHouse events/profiles tables (JSONEachRow or
CSVWithNames)."""

from __future__ import annotations

import csv
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

START = datetime(2026, 10, 1, tzinfo=UTC)
PAGES = ["/", "/pricing", "/docs", "/blog/launch"]


def _param(key: str, value: Any) -> dict[str, Any]:
    typed: dict[str, Any] = {"string_value": None, "int_value": None, "float_value": None,
                             "double_value": None}
    if isinstance(value, str):
        typed["string_value"] = value
    elif isinstance(value, int):
        typed["int_value"] = value
    else:
        typed["double_value"] = value
    return {"key": key, "value": typed}


def ga4_rows(users: int, seed: int = 4) -> tuple[list[dict[str, Any]], int, int]:
    """(rows with INT64 as ints, rows refused by the collector, rows the importer refuses)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for number in range(users):
        pseudo = f"{rng.randrange(10**9)}.{1700000000 + number}"
        moment = START + timedelta(seconds=rng.randrange(20 * 86_400))
        session = int(moment.timestamp())
        for index in range(rng.randint(1, 8)):
            page = rng.choice(PAGES)
            name = "page_view" if index % 3 != 2 else rng.choice(["scroll", "purchase"])
            params = [_param("page_location", f"https://shop.example.com{page}?x={index}"),
                      _param("page_title", f"Title {page}"), _param("ga_session_id", session),
                      _param("ga_session_number", 1), _param("engaged_time", 1.5)]
            if index == 0:
                params.append(_param("page_referrer", "https://www.google.com/"))
            row = {
                "event_date": moment.strftime("%Y%m%d"),
                "event_timestamp": int(moment.timestamp() * 1_000_000) + index,
                "event_name": name, "event_params": params,
                "user_id": f"u{number}" if number % 5 == 0 else None,
                "user_pseudo_id": pseudo,
                "user_properties": [_param("plan", "pro")] if number % 4 == 0 else [],
                "device": {"category": rng.choice(["desktop", "mobile"]),
                           "operating_system": "Windows", "operating_system_version": "10",
                           "language": "en-us", "mobile_brand_name": None,
                           "mobile_model_name": None,
                           "web_info": {"browser": "Chrome", "browser_version": "120.0",
                                        "hostname": "shop.example.com"}},
                "geo": {"continent": "Europe", "country": rng.choice(
                    ["Germany", "United States", "South Korea", "(not set)"]),
                    "region": "Berlin", "city": "Berlin"},
                "traffic_source": {"name": "(organic)", "medium": "organic",
                                   "source": "google"},
                "collected_traffic_source": {
                    "manual_source": "newsletter" if index == 0 else None,
                    "manual_medium": "email" if index == 0 else None,
                    "manual_campaign_name": None, "manual_term": None,
                    "manual_content": None},
                "ecommerce": {"purchase_revenue": 19.99 if name == "purchase" else None,
                              "transaction_id": None},
                "stream_id": "1234567", "platform": "WEB",
                "batch_page_id": session, "batch_ordering_id": index,
                "batch_event_index": 0,
            }
            rows.append(row)
            moment += timedelta(seconds=rng.randint(3, 200))
    old = dict(rows[0], event_timestamp=int(datetime(1998, 1, 1, tzinfo=UTC).timestamp()
                                           * 1_000_000), event_name="old_event")
    nameless = dict(rows[1], event_name=None)
    rows += [old, dict(old, batch_ordering_id=99), nameless]
    return rows, 2, 1


def write_ga4_ndjson(path: Path, rows: list[dict[str, Any]]) -> Path:
    """BigQuery's NDJSON export: INT64 values as strings."""

    def as_bigquery(value: Any) -> Any:
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            return str(value)
        if isinstance(value, dict):
            return {k: as_bigquery(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [as_bigquery(v) for v in value]
        return value

    path.write_bytes(b"\n".join(orjson.dumps(as_bigquery(row)) for row in rows) + b"\n")
    return path


def write_ga4_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


OPENPANEL_COLUMNS = ("id", "name", "device_id", "profile_id", "project_id", "session_id",
                     "path", "origin", "referrer", "referrer_name", "referrer_type",
                     "duration", "properties", "created_at", "country", "city", "region",
                     "os", "os_version", "browser", "browser_version", "device", "brand",
                     "model", "sdk_name", "sdk_version")


def openpanel_rows(devices: int, seed: int = 5) -> tuple[list[dict[str, Any]], int, int]:
    """(events table rows, rows the collector refuses, rows the importer refuses)."""
    rng = random.Random(seed)
    rows = []
    for number in range(devices):
        device = uuid.uuid4().hex
        session = str(uuid.uuid4())
        moment = START + timedelta(seconds=rng.randrange(20 * 86_400))
        for index in range(rng.randint(1, 6)):
            page = rng.choice(PAGES)
            rows.append({
                "id": str(uuid.uuid4()), "name": "screen_view" if index % 2 == 0 else "click",
                "device_id": device, "profile_id": f"p{number}" if number % 3 == 0 else device,
                "project_id": "op-project", "session_id": session, "path": page,
                "origin": "https://shop.example.com",
                "referrer": "https://www.google.com/" if index == 0 else "",
                "referrer_name": "Google" if index == 0 else "",
                "referrer_type": "search" if index == 0 else "", "duration": index * 1000,
                "properties": {"plan": rng.choice(["free", "pro"]), "it's": "a \"quote\""},
                "created_at": (moment + timedelta(seconds=index * 30)).strftime(
                    "%Y-%m-%d %H:%M:%S.%f")[:23],
                "country": "DE", "city": "Berlin", "region": "Berlin", "os": "Windows",
                "os_version": "10", "browser": "Chrome", "browser_version": "120",
                "device": "desktop", "brand": "", "model": "", "sdk_name": "web",
                "sdk_version": "1.0"})
    rows.append(dict(rows[0], id=str(uuid.uuid4()), created_at="1999-01-01 00:00:00.000"))
    rows.append(dict(rows[0], id=""))
    return rows, 1, 1


def _clickhouse_map(value: dict[str, str]) -> str:
    def quote(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return "{" + ",".join(f"{quote(k)}:{quote(v)}" for k, v in value.items()) + "}"


def write_openpanel(path: Path, rows: list[dict[str, Any]], kind: str) -> Path:
    if kind == "ndjson":
        path.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
        return path
    with path.open("w", newline="") as stream:
        columns = list(rows[0])
        writer = csv.writer(stream)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_clickhouse_map(row[c]) if isinstance(row[c], dict) else row[c]
                             for c in columns])
    return path


def openpanel_profiles(count: int) -> list[dict[str, Any]]:
    return [{"id": f"p{n * 3}", "first_name": "Ada", "last_name": f"L{n}",
             "email": f"p{n}@example.com", "avatar": "", "properties": {"tier": "gold"},
             "project_id": "op-project", "is_external": True,
             "created_at": "2026-10-02 10:00:00.000"} for n in range(count)]

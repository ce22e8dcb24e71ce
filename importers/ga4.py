"""Google Analytics 4's BigQuery export (``events_YYYYMMDD``), as NDJSON or Parquet files.

BigQuery's NDJSON writes INT64 as strings, Parquet as integers: both are read the same. GA4
rows carry no event id, so the id is derived from what identifies an event in the export
(stream, user_pseudo_id, event_timestamp, name, batch ids and the parameters); two rows equal
in all of those are one event. The mapping is in docs/importers.md.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from importers.engine import source_event_id
from importers.files import FileSource, Record, Refuse

# GA4 names that Trackhouse reserves or names differently
EVENT_NAMES = {"page_view": "screen_view", "screen_view": "screen_view",
               "session_start": "ga_session_start", "session_end": "ga_session_end"}
# parameters that become columns, not properties
CONSUMED_PARAMS = frozenset({"page_location", "page_referrer", "page_title"})
# GA4's English country names that ISO 3166 spells otherwise
COUNTRY_NAMES = {
    "Russia": "RU", "South Korea": "KR", "North Korea": "KP", "Vietnam": "VN", "Iran": "IR",
    "Turkey": "TR", "Türkiye": "TR", "Czechia": "CZ", "Taiwan": "TW", "Bolivia": "BO",
    "Venezuela": "VE", "Tanzania": "TZ", "Syria": "SY", "Laos": "LA", "Moldova": "MD",
    "Hong Kong": "HK", "Macao": "MO", "Macau": "MO", "Palestine": "PS", "Kosovo": "XK",
    "Brunei": "BN", "Cape Verde": "CV", "Côte d’Ivoire": "CI", "Congo - Kinshasa": "CD",
    "Congo - Brazzaville": "CG", "Myanmar (Burma)": "MM", "Micronesia": "FM",
    "St. Lucia": "LC", "St. Kitts & Nevis": "KN", "St. Vincent & Grenadines": "VC",
    "Bosnia & Herzegovina": "BA", "Trinidad & Tobago": "TT", "Antigua & Barbuda": "AG",
    "Sao Tome & Principe": "ST", "Turks & Caicos Islands": "TC", "Curaçao": "CW",
}
UTM_KEYS = (("utm_source", "manual_source"), ("utm_medium", "manual_medium"),
            ("utm_campaign", "manual_campaign_name"), ("utm_term", "manual_term"),
            ("utm_content", "manual_content"))


@lru_cache(maxsize=1_000)
def country_code(name: str) -> str:
    """ISO 3166 alpha-2 of GA4's country name ('' when unknown or '(not set)')."""
    if not name or name.startswith("("):
        return ""
    if name in COUNTRY_NAMES:
        return COUNTRY_NAMES[name]
    if len(name) == 2 and name.isalpha():
        return name.upper()
    import pycountry

    try:
        return str(pycountry.countries.lookup(name).alpha_2)
    except LookupError:
        return ""


def _param_value(value: Any) -> Any:
    """The one filled member of a GA4 typed value (string, int, float or double)."""
    if not isinstance(value, dict):
        return value
    for key in ("string_value", "int_value", "double_value", "float_value"):
        found = value.get(key)
        if found is not None:
            if key == "int_value":
                try:
                    return int(found)
                except (TypeError, ValueError):
                    return str(found)
            return found
    return None


def _params(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    found: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            value = _param_value(item.get("value"))
            if value is not None:
                found[item["key"]] = value
    return found


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return "" if text.startswith("(not set)") else text


def _cents(value: Any) -> int | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite():
        return None
    return int((amount * 100).to_integral_value())


@lru_cache(maxsize=4_096)
def _utm_query(items: tuple[tuple[str, str], ...]) -> str:
    """``urlencode`` of UTM pairs: a campaign repeats over many events, its quoting once."""
    return urlencode(items)


def _with_utm(url: str, campaign: dict[str, Any]) -> str:
    """The page URL with the event's manual campaign fields as UTM parameters where the
    URL has none (GA4 keeps them in collected_traffic_source)."""
    missing = tuple((utm, value) for utm, key in UTM_KEYS if (value := _text(campaign.get(key))))
    if not missing or not url:
        return url
    if "utm_" in url:  # only then can the URL hold some already: parse it
        try:
            present = dict(parse_qsl(urlsplit(url).query))
        except ValueError:
            return url
        missing = tuple((k, v) for k, v in missing if k not in present)
        if not missing:
            return url
    base, _, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}{_utm_query(missing)}"
    return f"{joined}#{fragment}" if fragment else joined


class Ga4Source(FileSource):
    name = "ga4"

    def message(self, record: Record, file_number: int, row_number: int
                ) -> tuple[dict[str, Any], str]:
        name = record.get("event_name")
        timestamp = record.get("event_timestamp")
        if not isinstance(name, str) or not name:
            raise Refuse("GA4 row without event_name")
        try:
            micros = int(timestamp)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise Refuse("GA4 row without a numeric event_timestamp (microseconds)") from None
        pseudo = _text(record.get("user_pseudo_id"))
        params = _params(record.get("event_params"))
        identity = orjson.dumps(params, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                                default=str).decode()
        event_id = source_event_id(
            "ga4", _text(record.get("stream_id")), pseudo, str(micros), name,
            _text(record.get("batch_page_id")), _text(record.get("batch_ordering_id")),
            _text(record.get("batch_event_index")), identity)
        device = record.get("device") if isinstance(record.get("device"), dict) else {}
        web = device.get("web_info") if isinstance(device.get("web_info"), dict) else {}
        geo = record.get("geo") if isinstance(record.get("geo"), dict) else {}
        traffic = (record.get("traffic_source")
                   if isinstance(record.get("traffic_source"), dict) else {})
        collected = (record.get("collected_traffic_source")
                     if isinstance(record.get("collected_traffic_source"), dict) else {})

        properties: dict[str, Any] = {
            key: value for key, value in params.items() if key not in CONSUMED_PARAMS}
        properties.update({
            f"user.{key}": value
            for key, value in _params(record.get("user_properties")).items()})
        properties["__eventId"] = event_id
        properties["__timestamp"] = micros // 1000
        if pseudo:
            properties["__deviceId"] = pseudo[:64]
        page = _with_utm(_text(params.get("page_location")), collected)
        if page:
            properties["__path"] = page
        if referrer := _text(params.get("page_referrer")):
            properties["__referrer"] = referrer
        if title := _text(params.get("page_title")):
            properties["__title"] = title
        overrides = {
            "__device": _text(device.get("category")),
            "__os": _text(device.get("operating_system")),
            "__os_version": _text(device.get("operating_system_version")),
            "__browser": _text(web.get("browser") or device.get("browser")),
            "__browser_version": _text(web.get("browser_version")
                                       or device.get("browser_version")),
            "__brand": _text(device.get("mobile_brand_name")),
            "__model": _text(device.get("mobile_model_name")),
            "__language": _text(device.get("language")),
            "__country": country_code(_text(geo.get("country"))),
            "__region": _text(geo.get("region")),
            "__city": _text(geo.get("city")),
        }
        properties.update({k: v for k, v in overrides.items() if v})
        for key in ("source", "medium", "name"):
            if value := _text(traffic.get(key)):
                properties[f"ga4.first_user_{key}"] = value
        ecommerce = record.get("ecommerce") if isinstance(record.get("ecommerce"), dict) else {}
        revenue = ecommerce.get("purchase_revenue")
        if revenue is not None and (cents := _cents(revenue)):
            properties["__revenue"] = cents
        payload: dict[str, Any] = {"name": EVENT_NAMES.get(name, name),
                                   "properties": properties}
        if user_id := _text(record.get("user_id")):
            payload["profileId"] = user_id
        return {"type": "track", "payload": payload}, f"{self.paths[file_number].name}:" \
                                                      f"{row_number + 1}"

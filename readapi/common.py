"""What both read APIs share: the error they raise, the warehouse reader, date checks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError

from trackhouse.settings import Settings, get_settings
from warehouse.client import warehouse

log = logging.getLogger(__name__)

# Dates a range may name: the collector stores nothing before 2000 (IMPORT_EARLIEST_MS), and
# a range longer than ten years is a mistake or an attempt to make the warehouse scan all.
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2100, 12, 31)
MAX_RANGE_DAYS = 3_660


class ReadApiError(Exception):
    """A request the read API refuses: ``status`` and a message safe to show the caller."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ReadApiError:
    return ReadApiError(400, message)


def parse_day(value: Any, name: str) -> date:
    """A ``YYYY-MM-DD`` date (a longer ISO text is cut to its date part only when it is a
    valid date-time: OpenPanel's clients send either)."""
    if not isinstance(value, str) or len(value) > 40:
        raise bad_request(f"{name} must be a date such as 2024-04-15")
    try:
        day = date.fromisoformat(value[:10])
        if len(value) > 10 and value[10] not in "T ":
            raise ValueError
    except ValueError:
        raise bad_request(f"{name} must be a date such as 2024-04-15, not {value[:40]!r}") from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise bad_request(f"{name} must lie between {EARLIEST_DAY} and {LATEST_DAY}")
    return day


def check_span(start: date, end: date) -> None:
    if end < start:
        raise bad_request(f"the date range ends ({end}) before it starts ({start})")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise bad_request(f"a date range may span at most {MAX_RANGE_DAYS} days")


@dataclass
class Reader:
    """Runs the read API's statements: one warehouse client per process (built on first use,
    rebuilt after a connection failure), each statement bounded by ``read_api_timeout_s``.
    Warehouse trouble is answered 503, never as an empty figure."""

    settings: Settings

    def __post_init__(self) -> None:
        self._client: Client | None = None
        self._lock = threading.Lock()

    def client(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = warehouse(self.settings, connect_timeout=3,
                                         send_receive_timeout=self.settings.read_api_timeout_s + 5)
            return self._client

    def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            result = self.client().query(
                sql, parameters=params,
                settings={"max_execution_time": self.settings.read_api_timeout_s})
        except DatabaseError as error:
            text = str(error)
            if "UNKNOWN_TABLE" in text or "UNKNOWN_DATABASE" in text:
                raise ReadApiError(503, "the analytics models are not built yet: run the "
                                   "pipeline (dbt build) first", {"Retry-After": "60"}) from None
            if "TIMEOUT_EXCEEDED" in text:
                raise ReadApiError(503, "the query took longer than "
                                   f"{self.settings.read_api_timeout_s} s; ask for a shorter "
                                   "range", {"Retry-After": "5"}) from None
            log.warning("read API query failed: %s", text[:500])
            raise ReadApiError(503, "the warehouse could not answer; retry later",
                               {"Retry-After": "5"}) from None
        except (ClickHouseError, OSError) as error:
            log.warning("warehouse unreachable: %s", error)
            with self._lock:
                self._client = None
            raise ReadApiError(503, "the warehouse is unreachable; retry later",
                               {"Retry-After": "5"}) from None
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


_reader: Reader | None = None
_reader_lock = threading.Lock()


def reader(settings: Settings | None = None) -> Reader:
    """The process-wide reader for ``settings`` (default: the current ones)."""
    global _reader
    settings = settings or get_settings()
    with _reader_lock:
        if _reader is None or _reader.settings is not settings:
            _reader = Reader(settings)
        return _reader

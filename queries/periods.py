"""Date ranges in a project's time zone: presets, previous period, UTC bounds, chart buckets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import pandas as pd


class Preset(StrEnum):
    TODAY = "today"
    YESTERDAY = "yesterday"
    LAST_7_DAYS = "7d"
    LAST_30_DAYS = "30d"
    LAST_90_DAYS = "90d"
    MONTH_TO_DATE = "mtd"
    CUSTOM = "custom"


PRESET_LABELS = {
    Preset.TODAY: "Today",
    Preset.YESTERDAY: "Yesterday",
    Preset.LAST_7_DAYS: "Last 7 days",
    Preset.LAST_30_DAYS: "Last 30 days",
    Preset.LAST_90_DAYS: "Last 90 days",
    Preset.MONTH_TO_DATE: "Month to date",
    Preset.CUSTOM: "Custom",
}


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


# ClickHouse bucket expressions per granularity; the time zone is a bound parameter.
BUCKET_SQL = {
    Granularity.HOUR: "toStartOfHour({column}, {{tz:String}})",
    Granularity.DAY: "toStartOfDay({column}, {{tz:String}})",
    Granularity.WEEK: "toStartOfDay(toMonday({column}, {{tz:String}}), {{tz:String}})",
    Granularity.MONTH: "toStartOfDay(toStartOfMonth({column}, {{tz:String}}), {{tz:String}})",
}
# The same buckets of a project day (a Date already in the project's zone), for per-day marts.
DAY_BUCKET_SQL = {
    Granularity.DAY: "day",
    Granularity.WEEK: "toMonday(day)",
    Granularity.MONTH: "toStartOfMonth(day)",
}
_PANDAS_FREQ = {Granularity.HOUR: "h", Granularity.DAY: "D", Granularity.WEEK: "W-MON",
                Granularity.MONTH: "MS"}


@dataclass(frozen=True)
class DateRange:
    """Whole project days, ``start`` to ``end`` inclusive, in time zone ``tz``."""

    start: date
    end: date
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("a date range must not end before it starts")
        ZoneInfo(self.tz)  # raises for an unknown time zone name

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> DateRange:
        """The range of equal length that ends where this one starts."""
        end = self.start - timedelta(days=1)
        return DateRange(end - timedelta(days=self.days - 1), end, self.tz)

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """[first instant, first instant after) of the range, as UTC datetimes."""
        zone = ZoneInfo(self.tz)
        start = datetime.combine(self.start, time(), zone)
        end = datetime.combine(self.end + timedelta(days=1), time(), zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def buckets(self, granularity: Granularity) -> pd.DatetimeIndex:
        """Every chart bucket start of the range (local wall-clock times, naive)."""
        start = pd.Timestamp(self.start)
        end = pd.Timestamp(self.end + timedelta(days=1)) - pd.Timedelta(seconds=1)
        if granularity is Granularity.WEEK:
            start -= pd.Timedelta(days=start.weekday())
        elif granularity is Granularity.MONTH:
            start = start.replace(day=1)
        return pd.date_range(start, end, freq=_PANDAS_FREQ[granularity])


def bucket_in_progress(granularity: Granularity, tz: str,
                       now: datetime | None = None) -> pd.Timestamp:
    """The start of the chart bucket that contains ``now`` (local wall-clock time, naive, as
    ``DateRange.buckets`` gives them): the period still in progress."""
    local = pd.Timestamp((now or datetime.now(UTC)).astimezone(ZoneInfo(tz))).tz_localize(None)
    if granularity is Granularity.HOUR:
        return local.floor("h")
    day = local.normalize()
    if granularity is Granularity.WEEK:
        return day - pd.Timedelta(days=day.weekday())
    if granularity is Granularity.MONTH:
        return day.replace(day=1)
    return day


def today_in(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


def preset_range(preset: Preset, tz: str, today: date | None = None) -> DateRange:
    today = today or today_in(tz)
    match preset:
        case Preset.TODAY:
            return DateRange(today, today, tz)
        case Preset.YESTERDAY:
            yesterday = today - timedelta(days=1)
            return DateRange(yesterday, yesterday, tz)
        case Preset.LAST_7_DAYS:
            return DateRange(today - timedelta(days=6), today, tz)
        case Preset.LAST_30_DAYS:
            return DateRange(today - timedelta(days=29), today, tz)
        case Preset.LAST_90_DAYS:
            return DateRange(today - timedelta(days=89), today, tz)
        case Preset.MONTH_TO_DATE:
            return DateRange(today.replace(day=1), today, tz)
    raise ValueError(f"no fixed range for preset {preset!r}")


def default_granularity(date_range: DateRange) -> Granularity:
    if date_range.days <= 2:
        return Granularity.HOUR
    if date_range.days <= 92:
        return Granularity.DAY
    return Granularity.WEEK

"""Date ranges: presets, the previous period and project-day bounds across time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from queries.periods import DateRange, Granularity, Preset, preset_range

TODAY = date(2026, 3, 31)


@pytest.mark.parametrize(("preset", "start", "end"), [
    (Preset.TODAY, date(2026, 3, 31), date(2026, 3, 31)),
    (Preset.YESTERDAY, date(2026, 3, 30), date(2026, 3, 30)),
    (Preset.LAST_7_DAYS, date(2026, 3, 25), date(2026, 3, 31)),
    (Preset.LAST_30_DAYS, date(2026, 3, 2), date(2026, 3, 31)),
    (Preset.LAST_90_DAYS, date(2026, 1, 1), date(2026, 3, 31)),
    (Preset.MONTH_TO_DATE, date(2026, 3, 1), date(2026, 3, 31)),
])
def test_presets(preset: Preset, start: date, end: date) -> None:
    assert preset_range(preset, "UTC", today=TODAY) == DateRange(start, end, "UTC")


def test_previous_period_has_equal_length_and_ends_where_the_range_starts() -> None:
    month = DateRange(date(2026, 3, 1), date(2026, 3, 31), "UTC")
    assert month.previous() == DateRange(date(2026, 1, 29), date(2026, 2, 28), "UTC")
    today = DateRange(TODAY, TODAY, "UTC")
    assert today.previous() == DateRange(date(2026, 3, 30), date(2026, 3, 30), "UTC")


def test_bounds_follow_the_project_time_zone_across_daylight_saving() -> None:
    # Europe/Berlin switches to summer time on 2026-03-29: that day has 23 hours.
    day = DateRange(date(2026, 3, 29), date(2026, 3, 29), "Europe/Berlin")
    start, end = day.utc_bounds()
    assert start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert end == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert len(day.buckets(Granularity.HOUR)) == 24  # wall-clock buckets of the local day


def test_buckets_cover_the_range() -> None:
    week = DateRange(date(2026, 3, 25), date(2026, 3, 31), "UTC")
    assert len(week.buckets(Granularity.DAY)) == 7
    assert [str(b.date()) for b in week.buckets(Granularity.WEEK)] == ["2026-03-23", "2026-03-30"]
    assert [str(b.date()) for b in week.buckets(Granularity.MONTH)] == ["2026-03-01"]


def test_a_range_must_be_ordered_and_in_a_real_zone() -> None:
    with pytest.raises(ValueError):
        DateRange(date(2026, 3, 2), date(2026, 3, 1))
    with pytest.raises(Exception):  # noqa: B017 - zoneinfo raises its own error type
        DateRange(date(2026, 3, 1), date(2026, 3, 1), "Mars/Olympus")

"""What a person reads off the charts and tables: blank retention cells without data, traits as
typed JSON, tables without padding rows, the period in progress drawn as partial."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import dashboard_fixture as fd
import pandas as pd
import pytest
import streamlit as st
from dashboard_fixture import ADMIN, DashboardData
from test_pages import app_test, assert_no_exception, log_in

from app import charts
from queries.periods import DateRange, Granularity, bucket_in_progress
from queries.profiles import traits_json


def plotly_spec(at, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


# --- retention: a cell without data is blank ------------------------------------------------

def test_retention_cells_without_data_are_blank() -> None:
    frame = pd.DataFrame({
        "cohort": [date(2026, 11, 2)] * 3 + [date(2026, 11, 3)],
        "period": [0, 1, 2, 0],
        "cohort_size": [4, 4, 4, 2],
        "retained": [4, 1, 2, 2],
        "rate": [1.0, 0.25, 0.5, 1.0],
    })
    heatmap = charts.retention_heatmap(frame, "day").data[0]
    assert [list(row) for row in heatmap.text] == [["100.0%", "25.0%", "50.0%"],
                                                   ["100.0%", "", ""]]
    assert heatmap.texttemplate == "%{text}" and heatmap.hoverongaps is False


def test_the_retention_page_shows_no_nan(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(project=fd.SHOP, range="30d"), ADMIN)
    at.switch_page("app_pages/retention.py").run()
    assert_no_exception(at)
    heatmap = plotly_spec(at)["data"][0]
    cells = [cell for row in heatmap["text"] for cell in row]
    assert "" in cells  # later cohorts have not reached the last periods yet
    assert not [cell for cell in cells if "nan" in cell.lower()]
    assert "NaN" not in at.get("plotly_chart")[0].proto.spec


# --- profiles: traits as JSON with their types; the event table without padding ----------------

def test_traits_keep_their_types() -> None:
    row = {"profile_id": "u1", "first_name": None, "email": "a@b.example",
           "properties": {"plan": "pro", "seats": "3", "ratio": "0.5", "beta": "true",
                          "zip": "01234", "note": "None"},
           "first_seen_at": pd.Timestamp("2026-11-02 10:00:00"), "last_seen_at": pd.NaT,
           "events": pd.Series([12], dtype="uint64").iloc[0]}
    assert traits_json(row) == {
        "profile_id": "u1", "first_name": None, "email": "a@b.example",
        "properties": {"plan": "pro", "seats": 3, "ratio": 0.5, "beta": True, "zip": "01234",
                       "note": "None"},
        "first_seen_at": "2026-11-02T10:00:00", "last_seen_at": None, "events": 12}
    assert type(traits_json(row)["events"]) is int


def record_table_heights(monkeypatch: pytest.MonkeyPatch) -> list:
    """The ``height`` each st.dataframe call of the pages asks for (None: Streamlit's default,
    which fits the table to its rows up to ten, then scrolls)."""
    heights: list = []
    original = st.dataframe

    def recording(*args, **kwargs):
        heights.append(kwargs.get("height"))
        return original(*args, **kwargs)

    monkeypatch.setattr(st, "dataframe", recording)
    return heights


def test_the_profile_page_shows_typed_traits_and_an_unpadded_table(
        dashboard_data: DashboardData, monkeypatch: pytest.MonkeyPatch) -> None:
    heights = record_table_heights(monkeypatch)
    at = log_in(app_test(project=fd.SHOP), ADMIN)
    at.switch_page("app_pages/profiles.py").run()
    at.text_input(key="profiles.search").input("user-15").run()
    assert_no_exception(at)
    traits = json.loads(at.json[0].proto.body)
    expected = [e for e in fd.counted(dashboard_data.events, fd.SHOP) if e.profile_id == "user-15"]
    assert traits["profile_id"] == "user-15"
    assert traits["events"] == len(expected) and type(traits["events"]) is int
    assert traits["first_name"] is None and traits["email"] is None  # no identify call
    assert isinstance(traits["properties"], dict)
    assert datetime.fromisoformat(traits["first_seen_at"]).replace(tzinfo=UTC) == \
        min(e.created_at for e in expected)
    assert "None" not in at.json[0].proto.body and "{'" not in at.json[0].proto.body
    assert len(at.dataframe[1].value) == len(expected) < 10
    # no fixed height: the table is as tall as its rows, no empty rows below them
    assert heights[-2:] == [None, None]  # the search results, then the profile's events


def test_the_live_events_table_is_not_padded(dashboard_data: DashboardData,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    heights = record_table_heights(monkeypatch)
    at = log_in(app_test(project=fd.SHOP), ADMIN)
    at.switch_page("app_pages/realtime.py").run()
    assert_no_exception(at)
    assert heights[-2:] == [None, None]  # live events, sources


# --- the period in progress is drawn as partial -------------------------------------------------

def test_bucket_in_progress_is_local() -> None:
    now = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)  # already Dec 7 in Berlin, a Monday
    assert bucket_in_progress(Granularity.DAY, "Europe/Berlin", now) == pd.Timestamp("2026-12-07")
    assert bucket_in_progress(Granularity.HOUR, "Europe/Berlin", now) == \
        pd.Timestamp("2026-12-07 00:00")
    assert bucket_in_progress(Granularity.WEEK, "UTC", now) == pd.Timestamp("2026-11-30")
    assert bucket_in_progress(Granularity.MONTH, "UTC", now) == pd.Timestamp("2026-12-01")


def series(start: str, periods: int, freq: str, values: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"bucket": pd.date_range(start, periods=periods, freq=freq),
                         "visitors": values, "pageviews": values})


def test_the_day_in_progress_is_a_dashed_segment_not_a_drop() -> None:
    current = series("2026-12-01", 7, "D", [50, 52, 49, 51, 53, 50, 3])
    previous = series("2026-11-24", 7, "D", [40] * 7)
    figure = charts.timeseries(current, previous, "visitors", "Visitors", Granularity.DAY,
                               pd.Timestamp("2026-12-07"))
    solid, partial = figure.data[1], figure.data[2]
    assert list(solid.y) == [50, 52, 49, 51, 53, 50]  # the finished days only
    assert list(partial.x) == [pd.Timestamp("2026-12-06"), pd.Timestamp("2026-12-07")]
    assert list(partial.y) == [50, 3] and partial.line.dash == "dash"
    assert partial.name == "Visitors (so far)"
    # a range in the past has no period in progress: one solid line
    past = charts.timeseries(current, previous, "visitors", "Visitors", Granularity.DAY,
                             pd.Timestamp("2026-12-20"))
    assert len(past.data) == 2 and list(past.data[1].y) == list(current.visitors)


def test_hours_after_now_are_not_drawn() -> None:
    current = series("2026-12-07", 24, "h", [5] * 10 + [2] + [0] * 13)
    previous = series("2026-12-06", 24, "h", [4] * 24)
    figure = charts.timeseries(current, previous, "visitors", "Visitors", Granularity.HOUR,
                               pd.Timestamp("2026-12-07 10:00"))
    drawn = [*figure.data[1].x, *figure.data[2].x]
    assert max(drawn) == pd.Timestamp("2026-12-07 10:00")
    assert 0 not in list(figure.data[1].y) + list(figure.data[2].y)


def test_the_overview_chart_marks_today_as_partial(dashboard_data: DashboardData) -> None:
    at = log_in(app_test(project=fd.SHOP, range="7d"), ADMIN)
    assert_no_exception(at)
    traces = plotly_spec(at)["data"]
    partial = [t for t in traces if t.get("name") == "Visitors (so far)"]
    assert len(partial) == 1 and partial[0]["line"]["dash"] == "dash"
    today = bucket_in_progress(Granularity.DAY, fd.PROJECT_ZONES[fd.SHOP])
    assert pd.Timestamp(partial[0]["x"][-1]) == today
    # last week, finished: no partial segment
    last_week = DateRange(today.date() - timedelta(days=13), today.date() - timedelta(days=7),
                          fd.PROJECT_ZONES[fd.SHOP])
    at = log_in(app_test(project=fd.SHOP, range="custom", **{
        "from": last_week.start.isoformat(), "to": last_week.end.isoformat()}), ADMIN)
    assert_no_exception(at)
    assert not [t for t in plotly_spec(at)["data"] if t.get("name") == "Visitors (so far)"]

"""One project's events at and far beyond the edges of time do not disturb another's marts.

The collector accepts event times in [2000-01-01, received + 1 day]; older collectors and other
writers may have stored anything DateTime64 holds. Here one project (ODD) gets events at both
edges of that range and outside it (1960, 1974, 2120 and a millisecond past each edge), and one
received in 2120 (a writer with a wrong clock), written straight into the raw table, next to a
normal project. After a full build and after an incremental one that brings new normal events,
every mart of the normal project must equal the independent reference, and ODD's marts hold
exactly its in-range events.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import models_reference as reference
import pytest
from models_reference import seed_funnels, utc
from models_scenario import CUSTOM_EVENTS, PATHS, SHOP, SOURCES, Scenario

NORMAL = SHOP  # Europe/Berlin, with funnels in the seed
ODD = "odd-times"  # America/New_York: 2000-01-01 00:00 UTC is still 1999 there
ZONES = {NORMAL: "Europe/Berlin", ODD: "America/New_York"}
STATE_MARTS = ("daily_visitor_states", "daily_page_states", "daily_event_value_states")
STATE_KEYS = {"daily_visitor_states": (), "daily_page_states": ("path",),
              "daily_event_value_states": ("field", "value")}
DAILY_MARTS = ("daily_metrics", "hourly_metrics", *STATE_MARTS)
ROW_MARTS = ("sessions", "daily_metrics", "hourly_metrics", "funnel_steps", "retention",
             "profiles")


def visit(scenario: Scenario, rng: random.Random, device_id: str, at: datetime,
          received: Callable[[datetime], datetime | None] = lambda at: None) -> None:
    """A few events of one device from ``at`` on: page views, funnel steps, custom events."""
    number = int(device_id.rsplit("-", 1)[-1]) if device_id[-1].isdigit() else 0
    source = rng.choice(SOURCES)
    country = ("DE", "US", "FR")[number % 3]
    for index in range(rng.randint(1, 5)):
        if index == 0 or rng.random() < 0.5:
            name, path = "screen_view", rng.choice(PATHS)
        else:
            name, path = rng.choice(CUSTOM_EVENTS), ""
        scenario.event(NORMAL, device_id, name, at, path=path, received_at=received(at),
                       profile_id=f"user-{number}" if number % 4 == 0 and index else "",
                       source=source, country=country,
                       browser=("Firefox", "Chrome", "Safari")[number % 3])
        at += timedelta(seconds=rng.choice((5, 40, 300, 1500, 2400)))


@pytest.fixture(scope="module")
def stages(models_warehouse) -> dict[str, Any]:
    models = models_warehouse
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(2120)
    scenario = Scenario(rng=rng)

    # load 1: a week of the normal project, then ODD's events, received two hours ago
    for number in range(15):
        for _ in range(rng.randint(1, 3)):
            at = now - timedelta(days=8) + timedelta(seconds=rng.randint(0, 7 * 86400))
            visit(scenario, rng, f"normal-{number}", min(at, now - timedelta(hours=5)))
    received = now - timedelta(hours=2)
    kept = {"odd-first": datetime(2000, 1, 1, tzinfo=UTC),
            "odd-last": received + timedelta(days=1)}
    dropped = {"odd-1960": datetime(1960, 5, 1, 12, tzinfo=UTC),
               "odd-1974": datetime(1974, 5, 1, 12, tzinfo=UTC),
               "odd-2120": datetime(2120, 5, 1, 12, tzinfo=UTC),
               "odd-before": datetime(2000, 1, 1, tzinfo=UTC) - timedelta(milliseconds=1),
               "odd-after": received + timedelta(days=1, milliseconds=1)}
    for device_id, at in {**kept, **dropped}.items():
        scenario.event(ODD, device_id, "screen_view", at, received_at=received, path="/odd")
    # a writer whose clock is a century ahead: the event counts, the watermarks stay put
    kept["odd-clock"] = now - timedelta(days=1)
    scenario.event(ODD, "odd-clock", "screen_view", kept["odd-clock"], path="/odd",
                   received_at=datetime(2120, 5, 1, tzinfo=UTC))
    first_load = list(scenario.events)

    # load 2, received within the last hour: new sessions of known devices, a late event on
    # an old day, a new device
    def recently(at: datetime) -> datetime:
        return now - timedelta(minutes=rng.randint(5, 60))

    for number in range(5):
        visit(scenario, rng, f"normal-{number}",
              now - timedelta(minutes=rng.randint(70, 300)), recently)
    scenario.event(NORMAL, "normal-5", "screen_view", now - timedelta(days=5), path="/late",
                   received_at=now - timedelta(minutes=20))
    visit(scenario, rng, "normal-new-15", now - timedelta(minutes=90), recently)
    second_load = scenario.events[len(first_load):]

    models.insert_projects(ZONES)
    recorded: dict[str, Any] = {"now": now, "kept": kept, "loaded": [], "marts": []}
    for number, load in enumerate((first_load, second_load)):
        models.insert_events(load)
        if number == 0:
            models.dbt("build")
        else:
            models.dbt("build", "--exclude-resource-type", "unit_test")
        normal = [e for e in scenario.events[:len(first_load) + number * len(second_load)]
                  if e["project_id"] == NORMAL]
        recorded["loaded"].append(reference.counted_events(normal))
        recorded["marts"].append(read_marts(models))
    return recorded


def read_marts(models) -> dict[str, list[dict]]:
    marts = {mart: models.rows(mart) for mart in ROW_MARTS}
    for mart in STATE_MARTS:
        keys = "".join(f", {key}" for key in STATE_KEYS[mart])
        result = models.client.query(
            f"select project_id, day{keys}, finalizeAggregation(visitors_state) as visitors, "
            f"pageviews from {models.analytics}.{mart}"
        )
        marts[mart] = list(result.named_results())
    marts["build_info"] = models.rows("build_info")
    return marts


def project_rows(rows: list[dict], project_id: str = NORMAL) -> list[dict]:
    return [row for row in rows if row["project_id"] == project_id]


def assert_equal(mart: str, rows: list[dict], key: tuple[str, ...],
                 expected: dict[tuple, dict]) -> None:
    actual = {tuple(row[column] for column in key): row for row in rows}
    assert len(actual) == len(rows), f"{mart}: more than one row per {key}"
    assert sorted(actual) == sorted(expected), mart
    for grain, want in expected.items():
        for name, value in want.items():
            assert actual[grain][name] == pytest.approx(value), (mart, grain, name)


STAGES = (0, 1)


@pytest.mark.parametrize("stage", STAGES)
def test_every_mart_of_the_normal_project_is_exact(stages: dict[str, Any], stage: int) -> None:
    events = stages["loaded"][stage]
    marts = {mart: project_rows(rows) for mart, rows in stages["marts"][stage].items()
             if mart != "build_info"}

    sessions = {(r["project_id"], r["device_id"], utc(r["started_at"])): r
                for r in marts["sessions"]}
    expected_sessions = reference.sessions_mart(events, ZONES)
    assert sorted(sessions) == sorted(expected_sessions)
    for grain, want in expected_sessions.items():
        got = {**sessions[grain], "ended_at": utc(sessions[grain]["ended_at"])}
        assert {name: got[name] for name in want if name != "started_at"} == {
            name: value for name, value in want.items() if name != "started_at"}, grain
    contents = {(r["project_id"], r["device_id"], utc(r["started_at"])):
                sorted(zip(r["event_names"], r["paths"], strict=True))
                for r in marts["sessions"]}
    assert contents == {
        (s.project_id, s.device_id, s.started_at):
            sorted({(e["name"], reference.url_path(e["path"])) for e in s.events})
        for s in reference.sessionize(events)
    }

    daily = reference.daily_metrics(events, ZONES)
    assert_equal("daily_metrics", marts["daily_metrics"], ("project_id", "day"), daily)
    assert_equal("daily_visitor_states", marts["daily_visitor_states"], ("project_id", "day"),
                 {k: {"visitors": v["visitors"], "pageviews": v["pageviews"]}
                  for k, v in daily.items()})
    assert_equal("hourly_metrics", marts["hourly_metrics"], ("project_id", "day", "hour"),
                 reference.hourly_metrics(events, ZONES))
    assert_equal("daily_page_states", marts["daily_page_states"], ("project_id", "day", "path"),
                 reference.daily_pages(events, ZONES))
    assert_equal("daily_event_value_states", marts["daily_event_value_states"],
                 ("project_id", "day", "field", "value"),
                 reference.daily_event_values(events, ZONES))

    funnels = [f for f in seed_funnels() if f.project_id == NORMAL]
    assert_equal("funnel_steps", marts["funnel_steps"], ("project_id", "funnel", "day", "step"),
                 reference.funnel_steps(events, ZONES, funnels))
    assert_equal("retention", marts["retention"],
                 ("project_id", "granularity", "cohort", "period"),
                 reference.retention(events, ZONES))
    profiles = reference.profiles([], events)
    assert_equal("profiles", marts["profiles"], ("project_id", "profile_id"),
                 {k: {"events": v["events"]} for k, v in profiles.items()})
    for grain, want in profiles.items():
        [got] = [r for r in marts["profiles"] if (r["project_id"], r["profile_id"]) == grain]
        assert (utc(got["first_seen_at"]), utc(got["last_seen_at"])) == (
            want["first_seen_at"], want["last_seen_at"]), grain


def test_the_incremental_run_took_the_new_events(stages: dict[str, Any]) -> None:
    """Said in figures a person reads (the equality above at stage 1 implies it)."""
    devices = [{r["device_id"] for r in project_rows(stages["marts"][stage]["sessions"])}
               for stage in STAGES]
    assert devices[1] - devices[0] == {"normal-new-15"}
    events = [sum(r["events"] for r in project_rows(stages["marts"][stage]["daily_metrics"]))
              for stage in STAGES]
    assert events[1] - events[0] == len(stages["loaded"][1]) - len(stages["loaded"][0]) > 0
    built = [stages["marts"][stage]["build_info"] for stage in STAGES]
    assert len(built[0]) == len(built[1]) == 1
    assert built[0][0]["built_at"] < built[1][0]["built_at"]


@pytest.mark.parametrize("stage", STAGES)
def test_only_the_accepted_range_reaches_the_marts(stages: dict[str, Any], stage: int) -> None:
    """ODD's events at the range's edges count on their project days; the ones outside never
    reach a mart, and no mart holds a day outside [1999-12-31, today + 2]."""
    zone = ZoneInfo(ZONES[ODD])
    marts = stages["marts"][stage]
    assert sorted(r["device_id"] for r in project_rows(marts["sessions"], ODD)) == sorted(
        stages["kept"])
    assert {r["day"] for r in project_rows(marts["daily_metrics"], ODD)} == {
        at.astimezone(zone).date() for at in stages["kept"].values()}
    assert min(stages["kept"].values()).astimezone(zone).date() == date(1999, 12, 31)
    latest = stages["now"].date() + timedelta(days=2)
    for mart in DAILY_MARTS:
        days = {r["day"] for r in marts[mart]}
        assert days and min(days) >= date(1999, 12, 31) and max(days) <= latest, mart

"""The contract marts against answers computed independently in Python (models_reference.py).

One scenario (models_scenario.py) is delivered in three loads; after each load dbt builds
incrementally (the first build is a full one, with the unit and data tests), and every contract
mart must equal the answer for the events loaded so far. Finally a full refresh must reproduce
the incremental marts exactly.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import models_reference as reference
import pytest
from models_reference import seed_funnels, utc
from models_scenario import START, ZONES, build, loads

CONTRACT_MARTS = ("sessions", "daily_metrics", "funnel_steps", "retention", "profiles")
# the order a full refresh must reproduce, per mart (its grain, no watermark columns)
GRAIN = {
    "sessions": "project_id, device_id, started_at",
    "daily_metrics": "project_id, day",
    "funnel_steps": "project_id, funnel, day, step",
    "retention": "project_id, granularity, cohort, period",
    "profiles": "project_id, profile_id",
    "hourly_metrics": "project_id, day, hour",
}
# the per-day state marts of events, by their keys beside (project_id, day)
EVENT_STATE_MARTS = {"daily_visitor_states": (), "daily_page_states": ("path",),
                     "daily_event_value_states": ("field", "value")}


def state_rows(models, mart: str) -> list[tuple]:
    """A state mart's rows with each visitor bitmap as its sorted device numbers (no cutoff or
    receipt columns, which record when a row was built)."""
    keys = ", ".join(("project_id", "day", *EVENT_STATE_MARTS[mart]))
    return models.client.query(
        f"select {keys}, arraySort(bitmapToArray(visitors_state)), pageviews "
        f"from {models.analytics}.{mart} order by {keys}").result_rows


@pytest.fixture(scope="module")
def stages(models_warehouse) -> dict[str, Any]:
    """Load, build, and record the marts after each load and after a full refresh."""
    models = models_warehouse
    scenario = build()
    models.insert_projects(ZONES)
    cutoffs = [START + timedelta(days=5), START + timedelta(days=9)]
    event_loads = loads(scenario.events, cutoffs)
    call_loads = loads(scenario.profile_calls, cutoffs)
    assert all(event_loads), "every load has events"

    recorded: dict[str, Any] = {"loaded": [], "marts": [], "numbers": [], "range_visitors": []}
    loaded: list[dict] = []
    calls: list[dict] = []
    for number, (events, profile_calls) in enumerate(zip(event_loads, call_loads, strict=True)):
        models.insert_events(events)
        models.insert_profile_calls(profile_calls)
        loaded += events
        calls += profile_calls
        if number == 0:
            models.dbt("build")  # full build: seeds, models, unit tests and data tests
        else:
            models.dbt("build", "--exclude-resource-type", "unit_test")
        recorded["loaded"].append((list(loaded), list(calls)))
        recorded["marts"].append({m: models.rows(m, GRAIN[m]) for m in GRAIN})
        recorded["marts"][-1].update({m: state_rows(models, m) for m in EVENT_STATE_MARTS})
        recorded["numbers"].append(device_numbers(models))
        recorded["range_visitors"].append(dict(models.client.query(
            f"select project_id, groupBitmapMerge(visitors_state) "
            f"from {models.analytics}.daily_visitor_states group by project_id").result_rows))
    models.dbt("run", "--full-refresh")
    recorded["full_refresh"] = {m: models.rows(m, GRAIN[m]) for m in GRAIN}
    recorded["full_refresh"].update({m: state_rows(models, m) for m in EVENT_STATE_MARTS})
    recorded["full_refresh_numbers"] = device_numbers(models)
    return recorded


def device_numbers(models) -> dict[tuple[str, str], int]:
    """(project, device) -> its number in int_device_numbers."""
    result = models.client.query(
        f"select project_id, device_id, device_number "
        f"from {models.analytics}_intermediate.int_device_numbers")
    return {(project, device): number for project, device, number in result.result_rows}


STAGES = (0, 1, 2)


def answers(stages: dict[str, Any], stage: int) -> tuple[list[dict], list[dict]]:
    events, calls = stages["loaded"][stage]
    return reference.counted_events(events), calls


@pytest.mark.parametrize("stage", STAGES)
def test_sessions(stages: dict[str, Any], stage: int) -> None:
    events, _ = answers(stages, stage)
    expected = reference.sessions_mart(events, ZONES)
    actual = {}
    for row in stages["marts"][stage]["sessions"]:
        row = {**row, "started_at": utc(row["started_at"]), "ended_at": utc(row["ended_at"])}
        actual[(row["project_id"], row["device_id"], row["started_at"])] = row
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        assert {k: got[k] for k in want} == want, key
        assert isinstance(got["duration_s"], Decimal)
    ids = [(r["project_id"], r["session_id"]) for r in actual.values()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("stage", STAGES)
def test_session_contents(models_warehouse: Any, stages: dict[str, Any], stage: int) -> None:
    """Each session's distinct (event name, URL path, properties) of its events as aligned
    arrays, and its events' names and properties as hashed keys."""
    events, _ = answers(stages, stage)
    sessions_of_reference = reference.sessionize(events)
    expected = {(s.project_id, s.device_id, s.started_at):
                sorted({(e["name"], reference.url_path(e["path"])) for e in s.events})
                for s in sessions_of_reference}
    actual, actual_keys = {}, {}
    for row in stages["marts"][stage]["sessions"]:
        key = (row["project_id"], row["device_id"], utc(row["started_at"]))
        contents = list(zip(row["event_names"], row["paths"], strict=True))
        assert len(set(contents)) == len(contents) == len(row["event_properties"])
        actual[key] = sorted(contents)
        actual_keys[key] = list(row["event_value_keys"])
    assert actual == expected

    # the keys: cityHash64 (computed by the warehouse) of each distinct (field, value) pair
    pairs = [sorted({("event", e["name"]) for e in s.events}
                    | {(f"prop:{k}", v) for e in s.events
                       for k, v in (e.get("properties") or {}).items()})
             for s in sessions_of_reference]
    hashed = models_warehouse.client.query(
        "select arrayMap(pairs -> arraySort(arrayMap(p -> cityHash64(p.1, p.2), pairs)), "
        "{pairs:Array(Array(Tuple(String, String)))})", parameters={"pairs": pairs}
    ).result_rows[0][0]
    assert actual_keys == {(s.project_id, s.device_id, s.started_at): list(keys)
                           for s, keys in zip(sessions_of_reference, hashed, strict=True)}


@pytest.mark.parametrize("stage", STAGES)
def test_daily_metrics(stages: dict[str, Any], stage: int) -> None:
    events, _ = answers(stages, stage)
    expected = reference.daily_metrics(events, ZONES)
    actual = {(r["project_id"], r["day"]): r for r in stages["marts"][stage]["daily_metrics"]}
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        for name, value in want.items():
            assert got[name] == pytest.approx(value), (key, name)


@pytest.mark.parametrize("stage", STAGES)
def test_funnel_steps(stages: dict[str, Any], stage: int) -> None:
    events, _ = answers(stages, stage)
    expected = reference.funnel_steps(events, ZONES, seed_funnels())
    actual = {(r["project_id"], r["funnel"], r["day"], r["step"]): r
              for r in stages["marts"][stage]["funnel_steps"]}
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        assert {k: actual[key][k] for k in want} == want, key
        first = expected[(*key[:3], 1)]["visitors"]
        assert actual[key]["conversion_rate"] == pytest.approx(want["visitors"] / first)


@pytest.mark.parametrize("stage", STAGES)
def test_retention(stages: dict[str, Any], stage: int) -> None:
    events, _ = answers(stages, stage)
    expected = reference.retention(events, ZONES)
    actual = {(r["project_id"], r["granularity"], r["cohort"], r["period"]): r
              for r in stages["marts"][stage]["retention"]}
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        for name, value in want.items():
            assert actual[key][name] == pytest.approx(value), (key, name)


@pytest.mark.parametrize("stage", STAGES)
def test_profiles(stages: dict[str, Any], stage: int) -> None:
    events, calls = answers(stages, stage)
    expected = reference.profiles(calls, events)
    actual = {(r["project_id"], r["profile_id"]): r for r in stages["marts"][stage]["profiles"]}
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = {**actual[key], "first_seen_at": utc(actual[key]["first_seen_at"]),
               "last_seen_at": utc(actual[key]["last_seen_at"])}
        assert {k: got[k] for k in want} == want, key


def test_crafted_cases_are_present(stages: dict[str, Any]) -> None:
    """The scenario exercises what it claims (guards against a generator change)."""
    sessions = stages["marts"][2]["sessions"]
    by_device: dict[str, list[dict]] = {}
    for row in sessions:
        by_device.setdefault(row["device_id"], []).append(row)
    assert len(by_device["gap"]) == 2  # 30 min exactly: same session; + 1 ms: a new one
    assert len(by_device["night"]) == 1 and by_device["night"][0]["day"].isoformat() == "2026-10-25"
    assert sorted(r["day"].isoformat() for r in by_device["dst"]) == ["2026-10-25", "2026-11-01"]
    assert len(by_device["bridge"]) == 1  # joined by the late event
    assert len([r for r in stages["marts"][1]["sessions"] if r["device_id"] == "bridge"]) == 2
    assert by_device["custom"][0]["is_bounce"] is False
    before = {r["device_id"]: r for r in sorted(stages["marts"][1]["sessions"],
                                                key=lambda r: r["started_at"], reverse=True)
              if r["device_id"] in ("inside", "earlier")}  # each device's first session
    inside = sorted(by_device["inside"], key=lambda r: r["started_at"])
    assert [r["events"] for r in inside] == [4, 1] and before["inside"]["events"] == 3
    [earlier] = by_device["earlier"]  # started 20 minutes before the stored session, a new id
    assert earlier["events"] == 3 and earlier["session_id"] != before["earlier"]["session_id"]
    returning = sorted((r["project_id"], r["started_at"], r["events"])
                       for r in by_device["returning"])
    assert [(p, e) for p, _, e in returning] == [
        ("demo-app", 3), ("demo-app", 2), ("demo-app", 2), ("demo-app", 1), ("demo-shop", 1)]
    assert by_device["dup"][0]["events"] == 1
    assert "bot" not in by_device


def test_incremental_equals_full_refresh(stages: dict[str, Any]) -> None:
    def comparable(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "last_received_at"} for row in rows]

    for mart in GRAIN:
        incremental = comparable(stages["marts"][2][mart])
        assert comparable(stages["full_refresh"][mart]) == incremental, mart
    # the event state marts recompute only the days of the events received since their last
    # run (affected_event_days), not those of the sessions that changed
    for mart in EVENT_STATE_MARTS:
        assert stages["marts"][2][mart], mart
        assert stages["full_refresh"][mart] == stages["marts"][2][mart], mart


@pytest.mark.parametrize("stage", STAGES)
def test_device_numbers_are_dense_and_never_change(stages: dict[str, Any], stage: int) -> None:
    """Every counted device has a number, 1..n without gaps or repeats; a number, once given,
    stays through later loads and a full refresh; and the visitor bitmaps of all days merged
    give each project's distinct devices."""
    events, _ = answers(stages, stage)
    devices = {(e["project_id"], e["device_id"]) for e in events}
    numbers = stages["numbers"][stage]
    assert set(numbers) == devices
    assert sorted(numbers.values()) == list(range(1, len(devices) + 1))
    for later in [*stages["numbers"][stage + 1:], stages["full_refresh_numbers"]]:
        assert {key: later[key] for key in numbers} == numbers
    by_project: dict[str, set[str]] = {}
    for project, device in devices:
        by_project.setdefault(project, set()).add(device)
    assert stages["range_visitors"][stage] == {p: len(d) for p, d in by_project.items()}


def test_docs_generate_describes_every_model_and_column(models_warehouse, stages) -> None:
    """`dbt docs generate` works; every model has a description, and every column of every
    mart (as built in the warehouse) has one too."""
    import json

    models_warehouse.dbt("docs", "generate")
    target = models_warehouse.target_dir
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    models = {uid: node for uid, node in manifest["nodes"].items()
              if node["resource_type"] == "model"}
    assert [uid for uid, node in models.items() if not node.get("description")] == []
    undocumented = []
    for unique_id, node in models.items():
        if not node["original_file_path"].startswith("models/marts/"):
            continue
        built = catalog["nodes"][unique_id]
        undocumented += [f"{node['name']}.{column}" for column in built["columns"]
                         if not node["columns"].get(column, {}).get("description")]
    assert undocumented == []

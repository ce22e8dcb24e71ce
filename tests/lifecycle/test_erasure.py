"""Erasure and export of one profile and one device, on real dbt-built marts.

The model tests' scenario (two time zones, sessions across midnight, funnels, profiles) is
built with dbt; then a profile and a device are erased. Afterwards no table of the module's
databases, and nothing in the metadata database, holds either id; and every derived table
equals what a full rebuild from the remaining raw rows gives.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import models_reference as reference
import pytest
from lifecycle_support import differences, metadata_holding, snapshot, tables_holding
from models_scenario import SHOP, ZONES, build

from lifecycle.privacy import PrivacyError, Subject, erase, export, requests

# The scenario's user-0 (identify and increment calls; events on devices that also sent
# anonymous ones) and device dev-4 (it carries user-4, which has profile calls too), renamed to
# ids found nowhere else in the test session's databases.
SCENARIO_PROFILE, SCENARIO_DEVICE = "user-0", f"{SHOP}-dev-4"
PROFILE = f"erase-me-{uuid.uuid4().hex}"
DEVICE = f"erase-device-{uuid.uuid4().hex}"


def renamed(scenario):
    for row in scenario.events + scenario.profile_calls:
        if row["project_id"] == SHOP and row["profile_id"] == SCENARIO_PROFILE:
            row["profile_id"] = PROFILE
        if row["project_id"] == SHOP and row.get("device_id") == SCENARIO_DEVICE:
            row["device_id"] = DEVICE
    return scenario


@pytest.fixture(scope="module")
def stages(models_warehouse) -> dict[str, Any]:
    models = models_warehouse
    scenario = renamed(build())
    models.insert_projects(ZONES)
    models.insert_events(scenario.events)
    models.insert_profile_calls(scenario.profile_calls)
    models.dbt("seed")
    models.dbt("run")
    settings, client = models.settings, models.client

    def dbt(args) -> None:
        models.dbt(*args)

    def shop_events() -> int:
        return int(client.query(
            f"select sum(events) from {models.analytics}.daily_metrics where project_id = "
            "{p:String}", parameters={"p": SHOP}).result_rows[0][0])

    recorded: dict[str, Any] = {"scenario": scenario, "before": snapshot(client, settings),
                                "events_before": shop_events()}
    recorded["export_profile"] = export(Subject(SHOP, "profile", PROFILE), settings=settings,
                                        client=client, requested_by="test@example.com")
    recorded["profile"] = erase(Subject(SHOP, "profile", PROFILE), settings=settings,
                                client=client, dbt=dbt, requested_by="test@example.com")
    recorded["after_profile"] = snapshot(client, settings)
    recorded["device"] = erase(Subject(SHOP, "device", DEVICE), settings=settings,
                               client=client, dbt=dbt)
    recorded["after"] = snapshot(client, settings)
    recorded["events_after"] = shop_events()
    recorded["export_after"] = export(Subject(SHOP, "profile", PROFILE), settings=settings,
                                      client=client)
    models.dbt("run", "--full-refresh")
    recorded["full_refresh"] = snapshot(client, settings)
    return recorded


def test_export_holds_every_row_of_the_profile(stages: dict[str, Any], models_warehouse) -> None:
    scenario = stages["scenario"]
    exported = stages["export_profile"]
    json.dumps(exported)  # plain JSON
    raw_events = [e for e in scenario.events
                  if e["project_id"] == SHOP and e["profile_id"] == PROFILE]
    raw_calls = [c for c in scenario.profile_calls
                 if c["project_id"] == SHOP and c["profile_id"] == PROFILE]
    tables = exported["tables"]
    raw, analytics = models_warehouse.raw, models_warehouse.analytics
    assert sorted(r["id"] for r in tables[f"{raw}.events"]) == sorted(
        str(e["id"]) for e in raw_events)
    assert len(tables[f"{raw}.profiles"]) == len(raw_calls) > 0
    assert {r["event_id"] for r in tables[f"{analytics}_staging.stg_events"]} == {
        str(e["id"]) for e in reference.counted_events(raw_events)}
    # the marts' rows: the profile's own, and the sessions it started
    [profile] = tables[f"{analytics}.profiles"]
    assert profile["profile_id"] == PROFILE and profile["first_name"] == "Ada"
    assert tables[f"{analytics}.sessions"]


def test_erasure_deletes_exactly_the_subjects_rows(stages: dict[str, Any]) -> None:
    scenario = stages["scenario"]
    profile_rows = [e for e in scenario.events
                    if e["project_id"] == SHOP and e["profile_id"] == PROFILE]
    device_rows = [e for e in scenario.events
                   if e["project_id"] == SHOP and e["device_id"] == DEVICE]
    deleted = stages["profile"].deleted
    assert next(v for k, v in deleted.items() if k.endswith(".events")) == len(profile_rows)
    device_deleted = stages["device"].deleted
    assert next(v for k, v in device_deleted.items() if k.endswith(".events")) == len(device_rows)
    assert stages["export_after"]["tables"] == {}


def test_counts_drop_by_what_was_erased(stages: dict[str, Any]) -> None:
    scenario = stages["scenario"]
    erased = {e["id"] for e in reference.counted_events(scenario.events)
              if e["project_id"] == SHOP
              and (e["profile_id"] == PROFILE or e["device_id"] == DEVICE)}
    assert erased
    assert stages["events_before"] - stages["events_after"] == len(erased)


def test_no_table_holds_the_erased_ids(stages: dict[str, Any], models_warehouse) -> None:
    settings = models_warehouse.settings
    databases = [settings.raw_database, settings.analytics_database,
                 f"{settings.analytics_database}_staging",
                 f"{settings.analytics_database}_intermediate"]
    for needle in (PROFILE, DEVICE):
        assert tables_holding(models_warehouse.client, databases, needle) == [], needle
        database = settings.effective_database_url.removeprefix("sqlite:///")
        assert metadata_holding(database, needle) == [], needle
    # the work lists are empty again
    for table in ("recompute", "erase_targets"):
        [(rows,)] = models_warehouse.client.query(
            f"select count() from {settings.raw_database}.{table}").result_rows
        assert rows == 0, table


def test_marts_equal_a_full_rebuild_without_the_erased_rows(stages: dict[str, Any]) -> None:
    assert stages["after_profile"] != stages["before"]
    assert differences(stages["after"], stages["full_refresh"]) == {}


def test_requests_are_audited_without_the_id(stages: dict[str, Any], models_warehouse) -> None:
    latest = requests(models_warehouse.settings, limit=10)
    actions = [(r.action, r.subject_kind, r.project_id) for r in latest[:4]]
    assert actions == [("export", "profile", SHOP), ("erase", "device", SHOP),
                       ("erase", "profile", SHOP), ("export", "profile", SHOP)]
    erase_profile = latest[2]
    assert erase_profile.subject_fingerprint == Subject(SHOP, "profile", PROFILE).fingerprint
    assert erase_profile.requested_by == "test@example.com"
    assert erase_profile.rows == stages["profile"].rows > 0
    assert erase_profile.detail["recomputed"]["days"] > 0


def test_a_subject_needs_an_id() -> None:
    with pytest.raises(PrivacyError, match="names nobody"):
        Subject(SHOP, "profile", "  ")
    with pytest.raises(PrivacyError, match="profile or a device"):
        Subject(SHOP, "session", "x")  # type: ignore[arg-type]

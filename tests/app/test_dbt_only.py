"""Every dashboard figure is a dbt model: each query function of queries/ runs against the
test warehouse (with and without filters, so that every table decider's branch runs), every
statement it sends is recorded at the ClickHouse client, and the warehouse's own parser
(``EXPLAIN AST``) names the tables the statement reads. Each must be a model of the dbt
project in the analytics database (or a CTE of the statement itself); none is raw."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dashboard_fixture as fd
import pytest
import streamlit as st
from clickhouse_connect.driver.client import Client
from dashboard_fixture import DashboardData

import queries
from queries import (
    alerts,
    events,
    explore,
    freshness,
    funnels,
    overview,
    profiles,
    realtime,
    retention,
)
from queries.filters import Filter, Op
from queries.periods import Granularity, Preset, preset_range
from trackhouse.settings import get_settings

RANGE = preset_range(Preset.LAST_30_DAYS, fd.PROJECT_ZONES[fd.SHOP])
SESSION_FILTER = (Filter("country", Op.IS, "DE"),)
EVENT_FILTERS = (Filter("path", Op.CONTAINS, "docs"), Filter("prop:plan", Op.IS, "pro"))
BOTH = SESSION_FILTER + EVENT_FILTERS[:1]
ONE_EVENT_FIELD = EVENT_FILTERS[1:]  # answered by the value states (base.visitor_states)

# The query layer's modules that hold no query: the filter compiler, periods, the cache hook.
NOT_QUERY_MODULES = {"filters", "periods", "cache"}
# Public functions of queries/ that send no statement of their own.
NOT_QUERIES = {"base.client", "base.mart", "base.run", "base.range_params",
               "base.event_filter_sql", "base.session_filter_sql", "base.visitor_states",
               "funnels.with_conversion",
               "freshness.is_stale", "profiles.traits_json",
               # Explore: the manifest's mart list and the catalog's column types (metadata,
               # no figure); its charts are explore.series, checked below
               "explore.mart_nodes", "explore.period_start", "explore.marts"}

# Explore charts whatever mart the manifest names; daily_metrics stands for any of them.
DAILY_METRICS = explore.MartDoc(
    "daily_metrics", get_settings().analytics_database, "daily_metrics", "",
    (explore.ColumnDoc("project_id", "", "LowCardinality(String)"),
     explore.ColumnDoc("day", "", "Date"), explore.ColumnDoc("visitors", "", "UInt64")),
    built=True)


def calls() -> dict[str, list[Callable[[], Any]]]:
    """Every query function -> the calls that run each of its branches."""
    steps = ("screen_view", "signup")
    return {
        "overview.event_totals": [lambda f=f: overview.event_totals(fd.SHOP, RANGE, f)
                                  for f in ((), SESSION_FILTER, EVENT_FILTERS, ONE_EVENT_FIELD)],
        "overview.event_series": [
            lambda g=g, f=f: overview.event_series(fd.SHOP, RANGE, g, f)
            for g in Granularity for f in ((), BOTH, ONE_EVENT_FIELD)],
        "overview.session_figures": [lambda f=f: overview.session_figures(fd.SHOP, RANGE, f)
                                     for f in ((), SESSION_FILTER, BOTH)],
        "overview.kpis": [lambda: overview.kpis(fd.SHOP, RANGE)],
        "overview.timeseries": [lambda: overview.timeseries(fd.SHOP, RANGE, Granularity.DAY)],
        "overview.top_pages": [lambda f=f: overview.top_pages(fd.SHOP, RANGE, f)
                               for f in ((), BOTH)],
        "overview.session_breakdown": [
            lambda d=d, f=f: overview.session_breakdown(fd.SHOP, RANGE, d, f)
            for d in overview.SESSION_DIMENSIONS for f in ((), BOTH)],
        "events.event_counts": [lambda f=f: events.event_counts(fd.SHOP, RANGE, f)
                                for f in ((), BOTH)],
        "events.event_trend": [lambda: events.event_trend(
            fd.SHOP, RANGE, Granularity.DAY, ("signup", "purchase"), BOTH)],
        "events.event_properties": [lambda f=f: events.event_properties(
            fd.SHOP, RANGE, "signup", f) for f in ((), BOTH)],
        "events.event_names": [lambda: events.event_names(fd.SHOP, RANGE)],
        "freshness.marts_built_at": [freshness.marts_built_at],
        "funnels.defined_funnels": [lambda: funnels.defined_funnels(fd.SHOP)],
        "funnels.funnel_steps": [lambda: funnels.funnel_steps(fd.SHOP, RANGE, "checkout")],
        "funnels.adhoc_funnel": [lambda f=f: funnels.adhoc_funnel(fd.SHOP, RANGE, steps, 3600, f)
                                 for f in ((), BOTH)],
        "profiles.search_profiles": [lambda: profiles.search_profiles(fd.SHOP, "user")],
        "profiles.profile": [lambda: profiles.profile(fd.SHOP, "user-15")],
        "profiles.profile_timeline": [lambda: profiles.profile_timeline(fd.SHOP, "user-15")],
        "realtime.live_visitors": [lambda: realtime.live_visitors(fd.SHOP)],
        "realtime.events_per_minute": [lambda: realtime.events_per_minute(fd.SHOP)],
        "realtime.live_stream": [lambda: realtime.live_stream(fd.SHOP)],
        "realtime.live_sources": [lambda: realtime.live_sources(fd.SHOP)],
        "explore.series": [lambda a=a: explore.series(DAILY_METRICS, "day", ("visitors",), a,
                                                      fd.SHOP, RANGE)
                           for a in explore.AGGREGATES],
        "alerts.daily_figure": [lambda m=m: alerts.daily_figure(fd.SHOP, m, RANGE.end)
                                for m in alerts.TRAFFIC_COLUMNS],
        "alerts.hourly_figure": [lambda: alerts.hourly_figure(fd.SHOP, "visitors", RANGE.end, 9)],
        "alerts.event_count": [lambda: alerts.event_count(fd.SHOP, "signup",
                                                          *RANGE.utc_bounds())],
        "alerts.funnel_conversion": [lambda: alerts.funnel_conversion(fd.SHOP, "checkout",
                                                                      RANGE.end)],
        "retention.cohorts": [lambda g=g, f=f: retention.cohorts(fd.SHOP, RANGE, g, filters=f)
                              for g in retention.GRANULARITIES for f in ((), BOTH)],
    }


def query_functions() -> set[str]:
    """``module.function`` of every public function defined in queries/."""
    found = set()
    for info in pkgutil.iter_modules(queries.__path__):
        if info.name in NOT_QUERY_MODULES:
            continue
        module = importlib.import_module(f"queries.{info.name}")
        for name, value in vars(module).items():
            target = getattr(value, "__wrapped__", value)
            if (inspect.isfunction(target) and target.__module__ == module.__name__
                    and not name.startswith("_")):
                found.add(f"{info.name}.{name}")
    return found - NOT_QUERIES


def dbt_relations(data: DashboardData) -> set[str]:
    """``database.table`` of every model of the dbt project (its manifest, written by the
    fixture's dbt build)."""
    manifest = json.loads((data.dbt_target / "manifest.json").read_text())
    return {f"{node['schema']}.{node['alias']}" for node in manifest["nodes"].values()
            if node["resource_type"] == "model"}


def tables_named(client: Client, sql: str, parameters: dict[str, Any]) -> set[str]:
    """The tables a statement names, by the warehouse's own parser."""
    ast = client.raw_query(f"explain ast {sql}", parameters=parameters,
                           fmt="TabSeparatedRaw").decode()
    return set(re.findall(r"TableIdentifier (\S+)", ast))


def test_every_query_function_is_exercised() -> None:
    assert query_functions() == set(calls()), "add the new query function to calls()"


@contextmanager
def recorded_queries() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every statement clickhouse-connect sends inside the block: (SQL, parameters)."""
    recorded: list[tuple[str, dict[str, Any]]] = []
    original = Client.query

    def recording(self: Client, query: str | None = None, parameters: Any = None,
                  *args: Any, **kwargs: Any) -> Any:
        recorded.append((query or "", dict(parameters or {})))
        return original(self, query, parameters, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Client, "query", recording)
        yield recorded


def analytics_relations(data: DashboardData) -> set[str]:
    """The dbt models in the analytics database: all that the dashboards and APIs may read."""
    analytics = f"{get_settings().analytics_database}."
    return {r for r in dbt_relations(data) if r.startswith(analytics)}


def test_dashboards_read_only_dbt_models(dashboard_data: DashboardData) -> None:
    from warehouse.client import warehouse

    statements: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    with recorded_queries() as recorded:
        for name, runs in calls().items():
            for call in runs:
                st.cache_data.clear()  # a cached answer would send nothing
                before = len(recorded)
                call()
                assert len(recorded) > before, f"{name} sent no statement"
                statements.setdefault(name, []).extend(recorded[before:])

    settings = get_settings()
    allowed = analytics_relations(dashboard_data)
    client = warehouse()
    try:
        offences = []
        for name, sent in statements.items():
            for sql, parameters in sent:
                ctes = set(re.findall(r"\b(\w+) as \(", sql))
                for table in tables_named(client, sql, parameters):
                    if table not in allowed and table not in ctes:
                        offences.append(f"{name} reads {table}")
        assert offences == []
        assert any(settings.analytics_database + ".events_current" in sql
                   for sent in statements.values() for sql, _ in sent)
    finally:
        client.close()


def test_a_raw_read_is_caught(dashboard_data: DashboardData) -> None:
    """The check itself: a statement on the raw events names the raw table."""
    from warehouse.client import warehouse

    client = warehouse()
    try:
        raw = f"{get_settings().raw_database}.events"
        named = tables_named(client, f"select count() from {raw} where project_id = "
                                     "{project:String}", {"project": fd.SHOP})
        assert named == {raw}
        assert raw not in dbt_relations(dashboard_data)
    finally:
        client.close()

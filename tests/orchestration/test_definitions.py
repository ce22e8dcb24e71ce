"""The one Definitions object loads, and its asset graph reads raw -> staging -> intermediate ->
marts, with dbt tests, freshness and collector checks attached where a person looks for them."""

from __future__ import annotations

from collections import defaultdict

from dagster import AssetCheckKey, AssetKey, Definitions

LAYERS = ("raw", "staging", "intermediate", "marts")
MART_CONTRACT = {"sessions", "daily_metrics", "funnel_steps", "retention", "profiles"}


def test_definitions_load_with_the_layered_asset_graph(manifest_ready: None) -> None:
    from orchestration.definitions import defs

    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    by_group: dict[str, set[AssetKey]] = defaultdict(set)
    for key in graph.get_all_asset_keys():
        by_group[graph.get(key).group_name].add(key)
    assert set(LAYERS) <= set(by_group)
    assert {key.path[-1] for key in by_group["raw"]} == {"events", "profiles", "projects",
                                                         "recompute"}
    assert MART_CONTRACT <= {key.path[-1] for key in by_group["marts"]}

    def layer(key: AssetKey) -> str:
        return graph.get(key).group_name

    # each model reads only its own layer or the ones before it; staging alone reads raw
    for key in graph.get_all_asset_keys():
        if layer(key) not in LAYERS:
            continue
        for parent in graph.get(key).parent_keys:
            if layer(parent) not in LAYERS:
                continue  # the seeds (funnel definitions)
            assert LAYERS.index(layer(parent)) <= LAYERS.index(layer(key)), (key, parent)
            if layer(parent) == "raw":
                assert layer(key) == "staging", f"{key} reads a raw table directly"

    # and the sessions mart is built from the raw events through every layer
    def layers_to_raw(key: AssetKey) -> list[list[str]]:
        if layer(key) == "raw":
            return [["raw"]]
        paths = [path + [layer(key)] for parent in graph.get(key).parent_keys
                 if layer(parent) in LAYERS for path in layers_to_raw(parent)]
        return [[name for n, name in enumerate(p) if n == 0 or p[n - 1] != name] for p in paths]

    assert list(LAYERS) in layers_to_raw(AssetKey("sessions"))


def test_checks_are_attached_where_they_belong(manifest_ready: None) -> None:
    from orchestration.assets import RAW_EVENTS_KEY
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    checks: dict[AssetKey, set[str]] = defaultdict(set)
    for check_key in graph.asset_check_keys:
        checks[check_key.asset_key].add(check_key.name)
    # dbt tests are asset checks of the models they test
    dbt_tests = {(key, name) for key, names in checks.items() for name in names
                 if name not in ("freshness_check", "collector_buffer_backlog",
                                 "dead_letter_store_empty")}
    assert dbt_tests, "no dbt test became an asset check"
    for mart in MART_CONTRACT:
        assert "freshness_check" in checks[AssetKey(mart)], mart
    assert {"collector_buffer_backlog", "dead_letter_store_empty"} <= checks[RAW_EVENTS_KEY]
    # freshness is evaluated (a run each time a check is due) at most once per marts interval
    freshness_sensor = defs.resolve_sensor_def("freshness_checks_sensor")
    assert freshness_sensor.minimum_interval_seconds == 5 * 60


def test_jobs_split_the_models_between_the_cadences(manifest_ready: None) -> None:
    from orchestration.assets import dbt_models, raw_specs
    from orchestration.definitions import defs

    def selected(job_name: str) -> set[AssetKey]:
        return set(defs.resolve_job_def(job_name).asset_layer.selected_asset_keys)

    raw = {spec.key for spec in raw_specs}
    all_models = set(dbt_models.keys)
    incremental, slow, full = (
        selected("incremental_marts"), selected("funnels_and_retention"), selected("full_refresh")
    )
    graph = defs.resolve_asset_graph()
    # the hourly job: the models tagged hourly (the slow marts and what only retention reads)
    # and the seeds (docs/decisions/0048)
    hourly_models = {key for key in slow if graph.get(key).group_name != "seeds"}
    assert hourly_models == {
        AssetKey("funnel_steps"), AssetKey("retention"),
        AssetKey(["intermediate", "int_device_days"])}
    assert incremental & slow == set()
    # no model of the 5-minute job reads one of the hourly job's: it would read an hour-old input
    for key in incremental & all_models:
        assert not graph.get(key).parent_keys & hourly_models, key
    assert raw <= incremental  # the raw tables are observed on every tick
    docs = {AssetKey("dbt_docs")}  # after the builds that can change the models' relations
    assert docs <= incremental and docs <= full and not docs & slow
    assert (incremental - raw - docs) | slow == all_models
    assert full == all_models | docs

    # the models' data tests are checks of the hourly job, every one of them, and of the full
    # refresh; the 5-minute job runs none (docs/decisions/0047)
    def dbt_checks(job_name: str) -> set[AssetCheckKey]:
        layer = defs.resolve_job_def(job_name).asset_layer
        return {key for data in layer.data for key in data.assets_def.check_keys
                if key.asset_key in all_models and key.name != "freshness_check"}

    every_test = {key for key in graph.asset_check_keys if key.asset_key in all_models
                  and key.name != "freshness_check"}
    assert every_test
    assert dbt_checks("incremental_marts") == set()
    assert dbt_checks("funnels_and_retention") == every_test
    assert dbt_checks("full_refresh") == every_test


def test_build_info_follows_every_mart_of_the_incremental_job(manifest_ready: None) -> None:
    """build_info (the dashboards' "last complete build") is built after, and only after, every
    mart incremental_marts builds: a mart added without it would not hold the notice back."""
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    incremental_marts = {
        key for key in defs.resolve_job_def("incremental_marts").asset_layer.selected_asset_keys
        if graph.get(key).group_name == "marts"
    }
    assert AssetKey("build_info") in incremental_marts
    assert set(graph.get(AssetKey("build_info")).parent_keys) == incremental_marts - {
        AssetKey("build_info")}

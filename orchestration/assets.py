"""Assets: every dbt model (with its tests as asset checks) and the raw tables it reads.

The graph reads raw (observable source assets, one per dbt source table) -> staging ->
intermediate -> marts; the group of each dbt model is the folder it lives in.
"""

# No `from __future__ import annotations`: Dagster reads the Config and resource annotations
# of the decorated functions at run time.
import shutil
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BetaWarning,
    Config,
    DataVersion,
    Failure,
    MetadataValue,
    ObserveResult,
    RetryRequested,
    multi_observable_source_asset,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
    group_from_dbt_resource_props_fallback_to_directory,
)

from orchestration.project import apply_dbt_env, dbt_manifest, dbt_project
from orchestration.resources import WarehouseResource
from trackhouse.dbt import JOB_BUILD_EXCLUDES
from trackhouse.settings import get_settings
from warehouse.migrate import schema_behind

KEEP_INVOCATION_DIRS = 20  # dbt target folders of past invocations kept for their logs
RAW_GROUP = "raw"
SEED_GROUP = "seeds"
# The column that says how recent each raw table is (warehouse/migrations/0001_raw_schema.sql):
# the event time for events, the update time for the versioned profile and project rows.
NEWEST_TIME_COLUMN = {"events": "created_at", "profiles": "updated_at", "projects": "updated_at"}

# Substrings of dbt errors that mean the warehouse was briefly unreachable or overloaded, not
# that a model or a test is wrong: only these are retried.
TRANSIENT_WAREHOUSE_ERRORS = (
    "Connection refused",
    "Connection reset",
    "Connection aborted",
    "RemoteDisconnected",
    "Max retries exceeded",
    "timed out",
    "ConnectTimeout",
    "Temporary failure in name resolution",
    "TOO_MANY_SIMULTANEOUS_QUERIES",
    "NETWORK_ERROR",
    "SOCKET_TIMEOUT",
    "Service Unavailable",
)


class TrackhouseDbtTranslator(DagsterDbtTranslator):
    """dbt models are grouped by their folder (staging, intermediate, marts), seeds (the
    analysts' funnel definitions) in a group of their own."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        resource_type = dbt_resource_props["resource_type"]
        if resource_type == "source":
            return RAW_GROUP
        if resource_type == "seed":
            return SEED_GROUP
        return group_from_dbt_resource_props_fallback_to_directory(dbt_resource_props)


dbt_translator = TrackhouseDbtTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
)


class DbtBuildConfig(Config):
    """Run configuration of a dbt build (the full-refresh schedule sets ``full_refresh``)."""

    full_refresh: bool = False
    # transient warehouse errors: retried this many times, after 15 s, 30 s, 60 s, ...
    transient_retries: int = 3
    retry_base_delay_s: float = 15.0


def prune_invocation_dirs(target: Path, op_name: str, keep: int) -> None:
    """Delete all but the ``keep`` newest per-invocation dbt target folders of ``op_name``.

    dagster-dbt gives every invocation its own ``target/<op>-<run>-<id>/`` (manifest, run
    results, dbt.log); a 5-minute schedule would otherwise add hundreds a day. The newest stay
    for reading the dbt log of a recent failure.
    """
    folders = sorted(target.glob(f"{op_name}-*"), key=lambda path: path.stat().st_mtime)
    for folder in folders[:-keep] if keep else folders:
        shutil.rmtree(folder, ignore_errors=True)


def is_transient_warehouse_error(message: str) -> bool:
    return any(marker in message for marker in TRANSIENT_WAREHOUSE_ERRORS)


def refuse_raw_tables_behind() -> None:
    """Fail the run, saying what to do, when the raw tables lack a migration: dbt would build
    on columns that are not there yet. An unreachable warehouse is left to dbt's own run (and
    its retries)."""
    try:
        behind = schema_behind(get_settings())
    except Exception:
        return
    if behind is not None:
        raise Failure(str(behind))


def mirror_queued_projects() -> None:
    """Copy project changes still queued in the outbox (ADR 0027) before dbt joins the
    projects: a change made while the warehouse was down reaches the models on the next run."""
    from lifecycle.project_mirror import sync_projects_or_warn

    sync_projects_or_warn()


def build_dbt_models(project: DbtProject) -> AssetsDefinition:
    """The ``@dbt_assets`` of ``project`` (the Trackhouse project below; tests build one over a
    copy of it)."""

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=dbt_translator,
        name="dbt_models",
        # One slot in the `dbt` pool (dagster.yaml): two builds never write the same tables.
        pool="dbt",
    )
    def dbt_models(
        context: AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig
    ) -> Iterator[Any]:
        """``dbt build`` of the selected models: materializations, then their tests as checks."""
        apply_dbt_env()
        refuse_raw_tables_behind()
        mirror_queued_projects()
        prune_invocation_dirs(
            Path(project.project_dir) / project.target_path, context.op_def.name,
            keep=KEEP_INVOCATION_DIRS - 1,
        )
        args = ["build", *JOB_BUILD_EXCLUDES, *(["--full-refresh"] if config.full_refresh else [])]
        invocation = dbt.cli(args, context=context, raise_on_error=False)
        yield from invocation.stream()
        error = invocation.get_error()
        if error is None:
            return
        if (is_transient_warehouse_error(str(error))
                and context.retry_number < config.transient_retries):
            delay_s = config.retry_base_delay_s * 2**context.retry_number
            context.log.warning(
                f"warehouse unreachable or overloaded; dbt build retried in {delay_s:.1f} s "
                f"(attempt {context.retry_number + 2} of {config.transient_retries + 1})"
            )
            raise RetryRequested(
                max_retries=config.transient_retries, seconds_to_wait=delay_s
            ) from error
        raise error

    return dbt_models


dbt_models = build_dbt_models(dbt_project)


def raw_source_specs(manifest: Mapping[str, Any]) -> list[AssetSpec]:
    """One spec per dbt source table, keyed exactly as the dbt models' dependencies are."""
    specs = []
    for source in manifest["sources"].values():
        specs.append(
            AssetSpec(
                key=dbt_translator.get_asset_key(source),
                group_name=RAW_GROUP,
                description=source.get("description") or f"Raw table {source['identifier']}.",
                metadata={
                    "database": source["schema"],
                    "table": source["identifier"],
                    "newest_time_column": NEWEST_TIME_COLUMN.get(source["identifier"])
                    or source.get("loaded_at_field")
                    or "",
                },
            )
        )
    return specs


raw_specs = raw_source_specs(dbt_manifest())
RAW_EVENTS_KEY: AssetKey = next(
    (spec.key for spec in raw_specs if spec.metadata["table"] == "events"), AssetKey("events")
)


def observe_raw_tables(warehouse: WarehouseResource) -> Iterator[ObserveResult]:
    """Observe each raw table: stored rows and the newest event (or update) time."""
    client = warehouse.client()
    try:
        for spec in raw_specs:
            table = f"`{spec.metadata['database']}`.`{spec.metadata['table']}`"
            time_column = spec.metadata["newest_time_column"]
            newest_sql = f"max(`{time_column}`)" if time_column else "null"
            [(rows, newest)] = client.query(
                f"select count(), {newest_sql} from {table}"
            ).result_rows
            metadata: dict[str, Any] = {"row_count": MetadataValue.int(rows)}
            if newest is not None and rows:
                newest_utc = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
                metadata["newest_event_time"] = MetadataValue.timestamp(newest_utc)
            yield ObserveResult(
                asset_key=spec.key,
                metadata=metadata,
                data_version=DataVersion(f"{rows}@{newest.isoformat() if newest else ''}"),
            )
    finally:
        client.close()


# multi_observable_source_asset is beta in Dagster 1.13; it is used on purpose: one step
# observes every raw table (a step per table would cost a step each in every run).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)
    raw_tables = multi_observable_source_asset(specs=raw_specs, name="raw_tables")(
        observe_raw_tables
    )

"""Asset checks beyond the dbt tests (which dagster-dbt turns into checks by itself).

- freshness of every mart: last materialized within two of its schedule intervals;
- the collector's Redis buffer: rows waiting to land, and rows parked in the dead-letter store.
  dbt cannot see either, so they are checked against Redis and attached to the raw events table
  they are on their way to.
"""

# No `from __future__ import annotations`: Dagster reads the Config and resource annotations
# of the decorated functions at run time.
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    DefaultSensorStatus,
    MetadataValue,
    SupersessionWarning,
    asset_check,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
)
from redis import Redis, RedisError

from orchestration.assets import RAW_EVENTS_KEY, dbt_translator
from orchestration.project import dbt_manifest
from orchestration.resources import RedisResource
from trackhouse.buffer_layout import BufferFigures
from trackhouse.dbt import HOURLY_TAG
from trackhouse.settings import get_settings, stale_after


def built_hourly(node: Mapping[str, Any]) -> bool:
    """Whether the hourly job builds the dbt node (its ``hourly`` tag), not the 5-minute one."""
    return HOURLY_TAG in node.get("tags", ())


def mart_models(manifest: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The dbt models that live in ``models/marts/``."""
    return [
        node for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["original_file_path"].replace("\\", "/").startswith("models/marts/")
    ]


def mart_keys(manifest: Mapping[str, Any], *, slow: bool) -> list[AssetKey]:
    return [
        dbt_translator.get_asset_key(node) for node in mart_models(manifest)
        if built_hourly(node) == slow
    ]


def build_freshness_checks() -> list[AssetChecksDefinition]:
    """A mart is stale when its last build is older than ``stale_after`` its schedule
    interval."""
    settings = get_settings()
    checks: list[AssetChecksDefinition] = []
    for slow, minutes in ((False, settings.marts_interval_minutes),
                          (True, settings.funnels_interval_minutes)):
        keys = mart_keys(dbt_manifest(), slow=slow)
        if keys:
            checks.extend(build_last_update_freshness_checks(
                assets=keys, lower_bound_delta=stale_after(minutes),
            ))
    return checks


# Dagster 1.13 prefers FreshnessPolicy on the assets, but that is a status only the daemon
# computes; asset checks show pass/fail beside the dbt tests, can be run on demand and are
# testable without a daemon, so the (still supported) check builders are kept on purpose.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SupersessionWarning)
    freshness_checks = build_freshness_checks()
    # each evaluation that finds a check due launches a run: at most one per marts interval
    freshness_sensor = build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks, default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60 * get_settings().marts_interval_minutes,
    )


# --- the collector's Redis buffer (its layout: trackhouse/buffer_layout.py) ---------------


def buffer_backlog(client: Redis) -> int:
    """Rows accepted by the collector and not yet landed: buffered plus claimed in batches (the
    same sum the collector bounds with TRACKHOUSE_COLLECTOR_BACKLOG_LIMIT)."""
    return BufferFigures.read(client).backlog_rows


def dead_letters(client: Redis) -> int:
    """Rows the worker could not land, kept for inspection and replay."""
    return BufferFigures.read(client).dead_letters


def _redis_count_check(
    redis: RedisResource, count: Callable[[Redis], int], *, name: str, limit: int,
    severity: AssetCheckSeverity,
) -> AssetCheckResult:
    """Pass while ``count`` (read from the collector's Redis) is at most ``limit``."""
    try:
        value = count(redis.client())
    except RedisError as error:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                description=f"Redis unreachable: {error}")
    passed = value <= limit
    return AssetCheckResult(
        passed=passed, severity=severity,
        metadata={name: MetadataValue.int(value), "alert_above": MetadataValue.int(limit)},
        description=None if passed else f"{name} = {value} (alert above {limit})",
    )


@asset_check(
    asset=RAW_EVENTS_KEY, name="collector_buffer_backlog",
    description="Rows waiting in the collector's Redis buffer stay at most "
    "TRACKHOUSE_BUFFER_BACKLOG_ALERT_ROWS (else the worker is down or falling behind).",
)
def collector_buffer_backlog(redis: RedisResource) -> AssetCheckResult:
    return _redis_count_check(redis, buffer_backlog, name="backlog_rows",
                              limit=get_settings().buffer_backlog_alert_rows,
                              severity=AssetCheckSeverity.WARN)


@asset_check(
    asset=RAW_EVENTS_KEY, name="dead_letter_store_empty",
    description="Nothing parked in the collector's dead-letter store (rows the worker could "
    "not land; inspect and replay them).",
)
def dead_letter_store_empty(redis: RedisResource) -> AssetCheckResult:
    return _redis_count_check(redis, dead_letters, name="dead_letters", limit=0,
                              severity=AssetCheckSeverity.ERROR)


collector_checks = [collector_buffer_backlog, dead_letter_store_empty]

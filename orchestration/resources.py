"""Resources the assets and checks use: dbt, the warehouse and the collector's Redis.

They read the one Trackhouse settings object when they are used (not when the code loads), so
a run always talks to the services the current settings name.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import redis
from clickhouse_connect.driver.client import Client
from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

from orchestration.project import DBT_EXECUTABLE, dbt_project
from trackhouse.settings import get_settings


class WarehouseResource(ConfigurableResource):
    """ClickHouse through ``warehouse.client.warehouse`` (the project's one client)."""

    def client(self) -> Client:
        from warehouse.client import warehouse

        return warehouse()


class RedisResource(ConfigurableResource):
    """The Redis the collector buffers in (``TRACKHOUSE_REDIS_URL`` unless ``url`` is given)."""

    url: str | None = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url or get_settings().redis_url, socket_timeout=5, socket_connect_timeout=5
        )


class TrackhouseDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt CLI resource without two start-up costs Trackhouse does not use.

    Before every invocation dagster-dbt runs ``dbt --version`` in a subprocess and builds a dbt
    adapter in-process (profile, project and macros loaded). The adapter only serves the
    optional row-count / column-metadata fetches, which Trackhouse does not request; together
    they cost several seconds per run, about as long as an incremental build itself.
    dagster-dbt is pinned to one version (pyproject.toml), so these two private hooks are stable.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None


def dbt_resource(project: DbtProject = dbt_project) -> TrackhouseDbtCliResource:
    return TrackhouseDbtCliResource(
        project_dir=str(project.project_dir), profiles_dir=str(project.profiles_dir),
        dbt_executable=str(DBT_EXECUTABLE),
    )


def build_resources() -> dict[str, Any]:
    return {
        "dbt": dbt_resource(),
        "warehouse": WarehouseResource(),
        "redis": RedisResource(),
    }

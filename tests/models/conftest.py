"""Fixtures of the dbt model tests: a private raw database and analytics database per module.

Each module gets its own ``raw_<id>`` / ``analytics_<id>`` databases (passed to dbt through
``dbt_env(settings)``, never through this process's environment) and its own dbt target
directory, so modules can run in parallel workers against one warehouse.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trackhouse import event_times
from trackhouse.settings import Settings

RAW_EVENT_COLUMNS = (
    "id", "project_id", "name", "device_id", "profile_id", "session_id", "created_at",
    "received_at", "path", "referrer", "referrer_name", "referrer_type", "utm_source",
    "utm_medium", "utm_campaign", "country", "region", "city", "os", "browser", "device",
    "is_bot",
)
PROFILE_COLUMNS = (
    "id", "project_id", "profile_id", "kind", "first_name", "last_name", "email", "properties",
    "property", "delta", "updated_at", "received_at",
)


# as the worker writes: one insert may hold years of history, a partition per month
WRITER_SETTINGS = {"max_partitions_per_insert_block": event_times.months_in_range()}


@dataclass
class ModelsWarehouse:
    """One module's databases, a client on them and a dbt runner pointed at them."""

    settings: Settings
    client: Any
    target_dir: Path

    @property
    def raw(self) -> str:
        return self.settings.raw_database

    @property
    def analytics(self) -> str:
        return self.settings.analytics_database

    def insert_events(self, rows: list[dict]) -> None:
        if rows:
            data = [[row[c] for c in RAW_EVENT_COLUMNS] for row in rows]
            self.client.insert(f"{self.raw}.events", data, column_names=list(RAW_EVENT_COLUMNS),
                               settings=WRITER_SETTINGS)

    def insert_profile_calls(self, rows: list[dict]) -> None:
        if rows:
            data = [[row[c] for c in PROFILE_COLUMNS] for row in rows]
            self.client.insert(f"{self.raw}.profiles", data, column_names=list(PROFILE_COLUMNS))

    def insert_projects(self, zones: dict[str, str]) -> None:
        self.client.command(
            f"insert into {self.raw}.projects (id, name, domain, timezone, created_at, updated_at) "
            "select id, id, '', zone, now64(3), now64(3) "
            "from (select arrayJoin({projects:Array(Tuple(String, String))}) as p, "
            "p.1 as id, p.2 as zone)",
            parameters={"projects": list(zones.items())},
        )

    def dbt(self, *args: str) -> Any:
        """Run dbt in-process on this module's databases; fail the test if dbt fails."""
        from trackhouse.dbt import run_dbt

        result = run_dbt(
            [*args, "--target-path", str(self.target_dir), "--log-path", str(self.target_dir)],
            self.settings,
        )
        if not result.success:
            failures = [
                f"{r.node.unique_id}: {r.message}" for r in (result.result or [])
                if getattr(r, "status", None) not in ("success", "pass", "skipped")
            ] if result.result is not None else [repr(result.exception)]
            pytest.fail(f"dbt {' '.join(args)} failed:\n" + "\n".join(failures))
        return result

    def rows(self, table: str, order_by: str = "tuple()") -> list[dict]:
        result = self.client.query(f"select * from {self.analytics}.{table} order by {order_by}")
        return list(result.named_results())


@pytest.fixture(scope="module")
def models_warehouse(
    trackhouse_env: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelsWarehouse]:
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse
    from warehouse.migrate import migrate

    suffix = uuid.uuid4().hex[:10]
    settings = get_settings().model_copy(
        update={"raw_database": f"raw_{suffix}", "analytics_database": f"analytics_{suffix}"}
    )
    client = warehouse(settings)
    migrate(client, settings)
    try:
        yield ModelsWarehouse(settings, client, tmp_path_factory.mktemp("dbt-target"))
    finally:
        for database in (settings.raw_database, *(
            f"{settings.analytics_database}{layer}" for layer in ("", "_staging", "_intermediate")
        )):
            client.command(f"drop database if exists {database} sync")
        client.close()

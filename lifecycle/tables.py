"""The warehouse tables Trackhouse owns, found by their columns rather than listed by name.

The privacy commands and retention must reach every table holding event-level or visitor-level
rows, including marts added after this module was written; so they ask ``system.columns``
which tables of the raw and dbt databases carry ``project_id`` and a subject column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clickhouse_connect.driver.client import Client

from trackhouse.settings import Settings

Layer = Literal["raw", "staging", "derived"]


@dataclass(frozen=True)
class Table:
    database: str
    name: str
    columns: frozenset[str]
    # raw: the collector's tables; staging: dbt's copies of them (a row per raw row);
    # derived: everything dbt computes from staging (intermediate tables and marts)
    layer: Layer

    @property
    def ref(self) -> str:
        return f"`{self.database}`.`{self.name}`"

    def has(self, *columns: str) -> bool:
        return all(column in self.columns for column in columns)


def layers(settings: Settings) -> dict[str, Layer]:
    """Database -> layer, with dbt's custom-schema names (profiles.yml)."""
    analytics = settings.analytics_database
    return {
        settings.raw_database: "raw",
        f"{analytics}_staging": "staging",
        f"{analytics}_intermediate": "derived",
        analytics: "derived",
    }


# Trackhouse's own bookkeeping in the raw database, never visitor data to erase or expire.
BOOKKEEPING = frozenset({"schema_migrations", "recompute", "erase_targets", "projects"})


def data_tables(client: Client, settings: Settings) -> list[Table]:
    """Every table (not view) of the raw and dbt databases, raw first, then staging, derived."""
    by_database = layers(settings)
    rows = client.query(
        """
        select tables.database, tables.name, groupArray(columns.name)
        from system.tables as tables
        inner join system.columns as columns
            on columns.database = tables.database and columns.table = tables.name
        where tables.database in {databases:Array(String)}
            and tables.engine not in ('View', 'MaterializedView', 'LiveView', 'WindowView')
            and not tables.is_temporary
        group by tables.database, tables.name
        """,
        parameters={"databases": list(by_database)},
    ).result_rows
    order = {"raw": 0, "staging": 1, "derived": 2}
    found = [
        Table(database, name, frozenset(columns), by_database[database])
        for database, name, columns in rows
        if not (by_database[database] == "raw" and name in BOOKKEEPING)
    ]
    return sorted(found, key=lambda t: (order[t.layer], t.database, t.name))

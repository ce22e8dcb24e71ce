"""The Explore page's questions: which marts dbt built (from the manifest the pipeline
publishes, trackhouse/dbt_docs.py), their docs, and a time series of any of them.

Relation and column names come from the manifest and must also exist in the warehouse
(``system.columns``) and look like plain identifiers before they are quoted into SQL; the
project, the dates and nothing else travel as bound parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd

from queries.base import MART_TTL_S, run
from queries.cache import cached
from queries.periods import DateRange
from trackhouse import dbt_docs
from trackhouse.settings import get_settings

MARTS_FOLDER = "models/marts/"
TIME_COLUMNS = ("day", "week", "month")  # a mart with one of these (a Date) can be charted
PROJECT_COLUMN = "project_id"  # and one scoped to the viewer's project
AGGREGATES = {"sum": "sum", "average": "avg", "min": "min", "max": "max"}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMERIC_TYPE = re.compile(r"(U?Int(8|16|32|64|128|256)|Float(32|64)|Decimal(32|64|128|256)?\(.*\))")
DATE_TYPE = re.compile(r"Date(32)?")


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    description: str
    data_type: str  # as built in the warehouse ("" when the relation does not exist yet)


@dataclass(frozen=True)
class MartDoc:
    name: str
    database: str
    table: str
    description: str
    columns: tuple[ColumnDoc, ...]
    built: bool  # the relation exists in the warehouse

    @property
    def time_columns(self) -> list[str]:
        return [c.name for c in self.columns
                if c.name in TIME_COLUMNS and DATE_TYPE.fullmatch(_bare_type(c.data_type))]

    @property
    def numeric_columns(self) -> list[str]:
        return [c.name for c in self.columns
                if NUMERIC_TYPE.fullmatch(_bare_type(c.data_type))]

    @property
    def chartable(self) -> bool:
        """A mart of the viewer's project with a date column and something to add up."""
        names = {c.name for c in self.columns}
        return bool(self.built and PROJECT_COLUMN in names and self.time_columns
                    and self.numeric_columns)


def _bare_type(data_type: str) -> str:
    """``Nullable(UInt64)`` -> ``UInt64``; ``LowCardinality(Nullable(String))`` -> ``String``."""
    while True:
        match = re.fullmatch(r"(?:Nullable|LowCardinality)\((.*)\)", data_type)
        if match is None:
            return data_type
        data_type = match.group(1)


def mart_nodes(manifest: Mapping[str, Any], database: str) -> list[Mapping[str, Any]]:
    """The manifest's models under models/marts/ that dbt builds into ``database``."""
    nodes = [
        node for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") == "model"
        and node.get("original_file_path", "").replace("\\", "/").startswith(MARTS_FOLDER)
        and node.get("config", {}).get("materialized") != "ephemeral"
        and node.get("schema") == database
    ]
    return sorted(nodes, key=lambda node: node["name"])


def _manifest_version() -> float:
    """The published manifest's modification time: the cache key of ``marts``."""
    try:
        return dbt_docs.published_manifest_path().stat().st_mtime
    except FileNotFoundError:
        return 0.0


def marts() -> list[MartDoc] | None:
    """Every mart of the published manifest with its docs and built column types, or None
    while the pipeline has not published one."""
    return _marts(_manifest_version())


@cached(MART_TTL_S)
def _marts(version: float) -> list[MartDoc] | None:
    manifest = dbt_docs.read_published_manifest()
    if manifest is None:
        return None
    database = get_settings().analytics_database
    built = run(
        "select table, name, type from system.columns where database = {database:String} "
        "order by table, position",
        {"database": database}, columns=("table", "name", "type"),
    )
    types: dict[str, dict[str, str]] = {}
    for table, name, data_type in built.itertuples(index=False):
        types.setdefault(table, {})[name] = data_type
    result = []
    for node in mart_nodes(manifest, database):
        table = node.get("alias") or node["name"]
        in_warehouse = types.get(table, {})
        documented = node.get("columns", {})
        # the built columns in table order, then documented ones the table lacks
        names = [*in_warehouse, *(name for name in documented if name not in in_warehouse)]
        columns = tuple(
            ColumnDoc(name, (documented.get(name) or {}).get("description", ""),
                      in_warehouse.get(name, ""))
            for name in names
        )
        result.append(MartDoc(node["name"], database, table, node.get("description", ""),
                              columns, built=bool(in_warehouse)))
    return result


def _identifier(name: str) -> str:
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain identifier")
    return f"`{name}`"


def period_start(day: date, time_column: str) -> date:
    """The first day of the period (Monday week, month) holding ``day``."""
    if time_column == "week":
        return day - timedelta(days=day.weekday())
    if time_column == "month":
        return day.replace(day=1)
    return day


@cached(MART_TTL_S)
def series(mart: MartDoc, time_column: str, measures: tuple[str, ...], aggregate: str,
           project_id: str, date_range: DateRange) -> pd.DataFrame:
    """One row per period of ``time_column`` in the range: each measure aggregated over the
    mart's rows of the project in that period (their other columns summed over, or averaged,
    ...).

    Only names the mart really has are accepted; anything else is a ValueError.
    """
    if not mart.chartable:
        raise ValueError(f"{mart.name} has no date and numeric columns to chart")
    if time_column not in mart.time_columns:
        raise ValueError(f"{mart.name} has no date column {time_column!r}")
    unknown = [m for m in measures if m not in mart.numeric_columns]
    if unknown or not measures:
        raise ValueError(f"not numeric columns of {mart.name}: {unknown or 'none chosen'}")
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate is one of {', '.join(AGGREGATES)}")
    time = _identifier(time_column)
    types = {c.name: _bare_type(c.data_type) for c in mart.columns}
    # decimals as floats: charts and data frames take them as numbers, not Decimal objects
    selected = ", ".join(
        f"{'toFloat64' if types[m].startswith('Decimal') else ''}"
        f"({AGGREGATES[aggregate]}({_identifier(m)})) as {_identifier(m)}"
        for m in measures
    )
    relation = f"{_identifier(mart.database)}.{_identifier(mart.table)}"
    return run(
        f"""select {time} as {time}, {selected}
        from {relation}
        where {_identifier(PROJECT_COLUMN)} = {{project:String}}
          and {time} between {{start:Date}} and {{end:Date}}
        group by {time}
        order by {time}""",
        {"project": project_id, "start": period_start(date_range.start, time_column),
         "end": date_range.end},
        columns=(time_column, *measures),
    )

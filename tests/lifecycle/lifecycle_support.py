"""Helpers of the lifecycle tests: snapshots of every derived table, and a scan for an id."""

from __future__ import annotations

import sqlite3
from typing import Any

from lifecycle.tables import data_tables
from trackhouse.settings import Settings

# columns that record when a run happened, not what the data is
RUN_COLUMNS = {"built_at", "invocation_id"}


def snapshot(client: Any, settings: Settings, layers: tuple[str, ...] = ("derived",)
             ) -> dict[str, list[str]]:
    """Every row of every table of the given layers, as sorted lines of TSV (partial
    aggregate states by their values)."""
    tables: dict[str, list[str]] = {}
    for table in data_tables(client, settings):
        if table.layer not in layers:
            continue
        types = client.query(
            "select name, type from system.columns where database = {d:String} "
            "and table = {t:String} order by position",
            parameters={"d": table.database, "t": table.name}).result_rows
        # a partial aggregate's bytes depend on the order rows were added: compare its value
        columns = [f"finalizeAggregation(`{name}`)" if kind.startswith("AggregateFunction")
                   else f"`{name}`" for name, kind in types if name not in RUN_COLUMNS]
        if not columns:
            continue  # build_info: nothing but when the run happened
        body = client.raw_query(
            f"select {', '.join(columns)} from {table.ref} format TabSeparated")
        tables[table.name] = sorted(body.decode(errors="replace").splitlines())
    return tables


def differences(left: dict[str, list[str]], right: dict[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(set(left) | set(right)):
        a, b = set(left.get(name, [])), set(right.get(name, []))
        if a != b or len(left.get(name, [])) != len(right.get(name, [])):
            out[name] = {"only_left": sorted(a - b)[:5], "only_right": sorted(b - a)[:5]}
    return out


def tables_holding(client: Any, databases: list[str], needle: str) -> list[str]:
    """Every table (and view) of these databases whose rows contain the text anywhere."""
    found = []
    rows = client.query(
        "select database, name from system.tables where database in {dbs:Array(String)}",
        parameters={"dbs": databases},
    ).result_rows
    for database, name in rows:
        body = client.raw_query(f"select * from `{database}`.`{name}` format TSVRaw")
        if needle.encode() in body:
            found.append(f"{database}.{name}")
    return found


def metadata_holding(database_path: str, needle: str) -> list[str]:
    """Every line of the metadata database's SQL dump that contains the text."""
    connection = sqlite3.connect(database_path)
    try:
        return [line for line in connection.iterdump() if needle in line]
    finally:
        connection.close()

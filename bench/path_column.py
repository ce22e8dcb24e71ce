"""The events' `path` column stored three ways, under the dashboards' path filters: plain String
(stg_events today), LowCardinality(String), and a dense path number looked up in a table of
distinct paths. Timed as the number of distinct paths grows, on the warehouse that
bench/dashboard.py keeps.

    .venv/bin/python bench/dashboard.py --no-pages     # once: 10 M events and their marts
    .venv/bin/python bench/path_column.py [--data-dir /tmp/trackhouse-bench-dashboard]

In a scratch database it copies stg_events' rows (the columns the queries read, stg_events'
partitioning and sort order) once per distinct-path count: the generated paths as they are
(20), then each suffixed with one of K/20 numbers. Every query runs on all three tables and must
give the same rows; it prints the medians and the ratios to String, then drops the scratch
database. docs/decisions/0050 has the figures and what they decided.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))
from dashboard import PROJECT, median_ms, scratch_database  # noqa: E402  (its warehouse, data)

LAYOUTS = {
    "String": "path String",
    "LowCardinality": "path LowCardinality(String)",
    "numbered": "path_number UInt32",
}

# the dashboards' 30-day figures under `country is DE` and a path filter: the range and the
# 30 days before it ({path_match}: the path condition in each layout's terms)
QUERIES = {
    "totals, path contains 'docs'":
        "select created_at >= {end} - toIntervalDay(30) as current, uniqExact(device_key), "
        "countIf(is_pageview) from {table} where project_id = {project} "
        "and created_at >= {end} - toIntervalDay(60) and country = 'DE' "
        "and {contains} group by current order by current",
    "totals, path is {page!r}":
        "select created_at >= {end} - toIntervalDay(30) as current, uniqExact(device_key), "
        "countIf(is_pageview) from {table} where project_id = {project} "
        "and created_at >= {end} - toIntervalDay(60) and country = 'DE' "
        "and {equals} group by current order by current",
    "top 10 paths, 30 days":
        "select {page} as page, views from (select {key} as key, count() as views from {table} "
        "where project_id = {project} and created_at >= {end} - toIntervalDay(30) "
        "and is_pageview group by key) {lookup} order by views desc, page limit 10",
}


def copy_sql(db: str, staging: str, layout: str, distinct: int) -> list[str]:
    """Statements building {db}.events_<layout> with `distinct` paths (0: as generated)."""
    path = ("path" if distinct == 0 else
            f"concat(path, '/', toString(cityHash64(event_id, 'path') % {max(distinct // 20, 1)}))")
    table = f"{db}.events_{layout.lower()}"
    statements = [f"drop table if exists {table}"]
    columns = "project_id, device_id, created_at, event_id, device_key, is_pageview, country"
    if layout == "numbered":
        statements += [
            f"drop table if exists {db}.paths",
            f"create table {db}.paths engine = MergeTree order by path_number as "
            f"select path, toUInt32(row_number() over (order by path)) as path_number "
            f"from (select distinct {path} as path from {staging}.stg_events)",
        ]
        source = (f"select {columns}, p.path_number from (select *, {path} as new_path "
                  f"from {staging}.stg_events) as e any left join {db}.paths as p "
                  f"on p.path = e.new_path")
    else:
        source = f"select {columns}, {path} from {staging}.stg_events"
    statements += [
        f"create table {table} (project_id LowCardinality(String), device_id String, "
        f"created_at DateTime64(3, 'UTC'), event_id UUID, device_key UInt64, is_pageview Bool, "
        f"country LowCardinality(String), {LAYOUTS[layout]}) engine = MergeTree "
        f"partition by toMonday(created_at) order by (project_id, device_id, created_at, event_id)",
        f"insert into {table} {source}",
        f"optimize table {table} final",  # the same part count for every layout
    ]
    return statements


def layout_terms(db: str, layout: str, page: str) -> dict[str, str]:
    """The path conditions of one layout (`page`: the path of the equality filter), and how it
    groups by path and names the groups."""
    if layout != "numbered":
        return {"contains": "positionCaseInsensitiveUTF8(path, 'docs') > 0",
                "equals": f"path = '{page}'", "key": "path", "page": "key", "lookup": ""}
    numbers = f"select path_number from {db}.paths where "
    return {"contains": f"path_number in ({numbers}positionCaseInsensitiveUTF8(path, 'docs') > 0)",
            "equals": f"path_number in ({numbers}path = '{page}')",
            "key": "path_number", "page": "p.path",
            "lookup": f"as t any left join {db}.paths as p on p.path_number = t.key"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/trackhouse-bench-dashboard"))
    parser.add_argument("--runs", type=int, default=15, help="timed runs per query")
    parser.add_argument("--distinct", type=int, nargs="+", default=[0, 5_000, 50_000, 1_000_000],
                        help="distinct path counts to time (0: the generated 20 paths)")
    args = parser.parse_args()
    with scratch_database(args.data_dir, "bench_paths") as (client, analytics, scratch):
        end = client.command(f"select max(created_at) from {analytics}_staging.stg_events "
                             f"where project_id = '{PROJECT}'")
        common = {"end": f"toDateTime64('{end}', 3, 'UTC')", "project": f"'{PROJECT}'"}
        print(f"load average {os.getloadavg()[0]:.1f}; medians of {args.runs} runs; "
              f"ratio = time / String's")
        print(f"{'paths':>9} {'query':<32} " + " ".join(f"{name:>16}" for name in LAYOUTS))
        for distinct in args.distinct:
            started = time.perf_counter()
            for layout in LAYOUTS:
                for statement in copy_sql(scratch, f"{analytics}_staging", layout, distinct):
                    client.command(statement)
            count = client.command(f"select count() from {scratch}.paths")
            print(f"copied three tables with {count:,} paths in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            # a path that exists: the generated one, or one of its suffixed forms
            page = "/docs" if distinct == 0 else "/docs/1"
            for label, template in QUERIES.items():
                figures, results = [], []
                for layout in LAYOUTS:
                    sql = template.format(**common, **layout_terms(scratch, layout, page),
                                          table=f"{scratch}.events_{layout.lower()}")
                    results.append(client.query(sql).result_rows)
                    figures.append(median_ms(client, sql, args.runs))
                if any(result != results[0] for result in results):
                    raise SystemExit(f"{label}: the layouts disagree: {results}")
                cells = [f"{ms:>7.1f} ms {ms / figures[0]:>4.2f}x" for ms in figures]
                print(f"{count:>9,} {label.format(page=page):<32} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()

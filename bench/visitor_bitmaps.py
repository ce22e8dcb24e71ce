"""The marts' visitor bitmaps (roaring bitmaps of dense device numbers) against the exact hash-set
states they replaced (uniqExactState of cityHash64(device_id)): how fast a range's distinct
visitors merge each way, on the warehouse that bench/dashboard.py keeps.

    .venv/bin/python bench/dashboard.py --no-pages     # once: 10 M events and their marts
    .venv/bin/python bench/visitor_bitmaps.py [--data-dir /tmp/trackhouse-bench-dashboard]

In a scratch database it builds the former hash-set states per project day, and per day and
path over page views (the old shapes of daily_visitor_states and daily_page_states), checks
that every range's distinct visitors come out the same both ways, prints the median time of
each merge through the endpoint, then drops the scratch database. The marts alone are
compared, not the `*_current` views: the hash sets take the events each mart holds, those
created before its cutoff (docs/decisions/0043). docs/decisions/0040 has the figures.
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
from dashboard import PROJECT, TIMEZONE, median_ms, scratch_database  # noqa: E402  (its warehouse, data)

# (label, mart query, bitmap query): {visitors} is the distinct-count merge of each side
MERGES = [
    ("event totals, 7 days and the 7 before",
     "select day >= {end} - 6 as current, {visitors} as visitors, sum(pageviews) as pageviews "
     "from {table} where project_id = {project} and day between {end} - 13 and {end} "
     "group by current order by current"),
    ("event totals, 30 days and the 30 before",
     "select day >= {end} - 29 as current, {visitors} as visitors, sum(pageviews) as pageviews "
     "from {table} where project_id = {project} and day between {end} - 59 and {end} "
     "group by current order by current"),
    ("top pages, 30 days",
     "select path, {visitors} as visitors, sum(pageviews) as pageviews from {table} "
     "where project_id = {project} and day between {end} - 29 and {end} "
     "group by path order by pageviews desc, path limit 10"),
]

BUILD = [
    """create table {db}.daily_visitor_hash_sets engine = MergeTree order by (project_id, day) as
       select project_id, toDate(created_at, '{tz}') as day,
              uniqExactState(cityHash64(device_id)) as visitors_state,
              countIf(is_pageview) as pageviews
       from {staging}.stg_events
       where created_at < (select max(cutoff) from {analytics}.daily_visitor_states)
       group by project_id, day""",
    """create table {db}.daily_page_hash_sets engine = MergeTree order by (project_id, day, path)
       settings index_granularity_bytes = 1048576 as
       select project_id, toDate(created_at, '{tz}') as day, path,
              uniqExactState(cityHash64(device_id)) as visitors_state, count() as pageviews
       from {staging}.stg_events
       where is_pageview and created_at < (select max(cutoff) from {analytics}.daily_page_states)
       group by project_id, day, path""",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/trackhouse-bench-dashboard"))
    parser.add_argument("--runs", type=int, default=15, help="timed runs per query")
    args = parser.parse_args()
    with scratch_database(args.data_dir, "bench_bitmaps") as (client, analytics, scratch):
        for template in BUILD:
            statement = template.format(db=scratch, staging=f"{analytics}_staging",
                                        analytics=analytics, tz=TIMEZONE)
            started = time.perf_counter()
            client.command(statement)
            print(f"built {statement.split()[2]} in {time.perf_counter() - started:.1f} s")
        end = client.command(f"select max(day) from {analytics}.daily_visitor_states "
                             f"where project_id = '{PROJECT}'")
        common = {"end": f"toDate('{end}')", "project": f"'{PROJECT}'"}
        print(f"load average {os.getloadavg()[0]:.1f}; medians of {args.runs} runs")
        print(f"{'merge':<42} {'hash sets':>12} {'bitmaps':>9} {'ratio':>6}")
        for label, template in MERGES:
            grain = "page" if label.startswith("top pages") else "visitor"
            hash_sets = template.format(**common, visitors="uniqExactMerge(visitors_state)",
                                        table=f"{scratch}.daily_{grain}_hash_sets")
            bitmaps = template.format(**common, visitors="groupBitmapMerge(visitors_state)",
                                      table=f"{analytics}.daily_{grain}_states")
            if client.query(hash_sets).result_rows != client.query(bitmaps).result_rows:
                raise SystemExit(f"{label}: the bitmaps count other visitors than the hash sets")
            before = median_ms(client, hash_sets, args.runs)
            after = median_ms(client, bitmaps, args.runs)
            print(f"{label:<42} {before:>9.1f} ms {after:>6.1f} ms {before / after:>5.1f}x")


if __name__ == "__main__":
    main()

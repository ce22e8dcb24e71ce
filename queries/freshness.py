"""Are the marts current? The time of their last complete build, from the `build_info` mart.

dbt rewrites `build_info` at the end of every run that builds all the incremental marts (a run
in which one fails skips it), so its `built_at` is the last complete build, read from the
warehouse like every other figure, whichever scheduler ran dbt.
"""

from __future__ import annotations

from datetime import UTC, datetime

from queries.base import TableMissing, mart, run
from queries.cache import cached
from trackhouse.settings import get_settings, stale_after

FRESHNESS_TTL_S = 30


@cached(FRESHNESS_TTL_S)
def marts_built_at() -> datetime | None:
    """When the incremental marts were last built together (UTC); None before the first build."""
    try:
        frame = run(f"select max(built_at) as built_at, count() as builds "
                    f"from {mart('build_info')}")
    except TableMissing:
        return None
    if frame.empty or not frame["builds"].iloc[0]:
        return None
    built_at = frame["built_at"].iloc[0].to_pydatetime()
    return built_at.replace(tzinfo=UTC) if built_at.tzinfo is None else built_at


def is_stale(built_at: datetime | None, now: datetime) -> bool:
    """Stale as Dagster's freshness checks of the incremental marts judge it."""
    return built_at is None or now - built_at > stale_after(get_settings().marts_interval_minutes)

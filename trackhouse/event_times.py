"""The range of event times Trackhouse keeps, and the partitions it spans.

The collector refuses an imported event outside it (live events are clamped to the receive
time instead), staging leaves out rows outside it, and every writer that may insert a long
history at once (the worker, dbt's models) allows one insert to touch a partition for every
month or week of it: ClickHouse refuses an insert touching more than
``max_partitions_per_insert_block`` partitions (100 by default), and ten years of history are
120 months.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

# From 2000-01-01T00:00:00Z to a day after the request arrived. Anything else is a client's
# bug (a zero or seconds-for-milliseconds epoch, a year typo) that would land as history.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_MS = int(EARLIEST.timestamp() * 1000)
AHEAD_MS = 86_400_000
RANGE_TEXT = "2000-01-01T00:00:00Z to a day after the request arrived"


def months_in_range(today: date | None = None) -> int:
    """Monthly partitions (``toYYYYMM``) the range spans: through next month, as events may be
    stamped a day ahead."""
    today = today or datetime.now(UTC).date()
    return (today.year - EARLIEST.year) * 12 + today.month - EARLIEST.month + 2


def weeks_in_range(today: date | None = None) -> int:
    """Weekly partitions (``toMonday``) the range spans: through tomorrow's week."""
    today = today or datetime.now(UTC).date()
    last = today + timedelta(days=1)
    first_monday = EARLIEST.date() - timedelta(days=EARLIEST.weekday())
    return ((last - timedelta(days=last.weekday())) - first_monday).days // 7 + 1

"""Cohort retention from the ``retention`` mart."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.periods import DateRange
from app.queries.base import MART_TTL_S, mart, range_params, run

GRANULARITIES = ("day", "week")


@st.cache_data(ttl=MART_TTL_S, show_spinner=False)
def cohorts(project_id: str, date_range: DateRange, granularity: str,
            max_period: int = 12) -> pd.DataFrame:
    """Cohorts starting in the range: (cohort, period, cohort_size, retained, rate)."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"retention granularity is one of {GRANULARITIES}")
    return run(
        f"""select cohort, period, cohort_size, retained, rate
        from {mart('retention')}
        where project_id = {{project:String}} and granularity = {{granularity:String}}
          and cohort between {{start_day:Date}} and {{end_day:Date}}
          and period <= {{max_period:UInt32}}
        order by cohort, period""",
        {**range_params(project_id, date_range), "granularity": granularity,
         "max_period": max_period},
        columns=("cohort", "period", "cohort_size", "retained", "rate"),
    )

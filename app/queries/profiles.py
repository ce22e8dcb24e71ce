"""Profiles: search, traits (the ``profiles`` mart) and a profile's event timeline (raw)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.queries.base import COUNTED_EVENT, MART_TTL_S, RAW_TTL_S, mart, raw_table, run


@st.cache_data(ttl=MART_TTL_S, show_spinner=False)
def search_profiles(project_id: str, text: str = "", limit: int = 50) -> pd.DataFrame:
    """Profiles whose id, e-mail or name contains ``text`` (all of them when empty)."""
    return run(
        f"""select profile_id, email, first_name, last_name, first_seen_at, last_seen_at, events
        from {mart('profiles')}
        where project_id = {{project:String}}
          and ({{text:String}} = ''
               or positionCaseInsensitiveUTF8(profile_id, {{text:String}}) > 0
               or positionCaseInsensitiveUTF8(ifNull(email, ''), {{text:String}}) > 0
               or positionCaseInsensitiveUTF8(concat(ifNull(first_name, ''), ' ',
                                                     ifNull(last_name, '')), {{text:String}}) > 0)
        order by last_seen_at desc, profile_id limit {{limit:UInt32}}""",
        {"project": project_id, "text": text, "limit": limit},
        columns=("profile_id", "email", "first_name", "last_name", "first_seen_at",
                 "last_seen_at", "events"),
    )


@st.cache_data(ttl=MART_TTL_S, show_spinner=False)
def profile(project_id: str, profile_id: str) -> dict | None:
    """One profile's traits and counters, or None."""
    frame = run(
        f"""select * from {mart('profiles')}
        where project_id = {{project:String}} and profile_id = {{profile:String}} limit 1""",
        {"project": project_id, "profile": profile_id},
    )
    return None if frame.empty else frame.iloc[0].to_dict()


@st.cache_data(ttl=RAW_TTL_S, show_spinner=False)
def profile_timeline(project_id: str, profile_id: str, limit: int = 200) -> pd.DataFrame:
    """The profile's latest events, newest first."""
    return run(
        f"""select created_at, name, path, properties, country, browser, device
        from {raw_table('events')}
        where project_id = {{project:String}} and profile_id = {{profile:String}}
          and {COUNTED_EVENT}
        order by created_at desc limit {{limit:UInt32}}""",
        {"project": project_id, "profile": profile_id, "limit": limit},
        columns=("created_at", "name", "path", "properties", "country", "browser", "device"),
    )

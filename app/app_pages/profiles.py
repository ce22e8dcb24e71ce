"""Profiles: find a profile, see its traits and its events."""

from __future__ import annotations

import streamlit as st

from app.page_context import current_project
from queries import profiles as q

project = current_project()
st.title("Profiles")
text = st.text_input("Search by id, e-mail or name", key="profiles.search")
found = q.search_profiles(project.id, text.strip())
if found.empty:
    st.info("No profile matches.")
    st.stop()

st.dataframe(found, hide_index=True, width="stretch")
emails = dict(zip(found.profile_id, found.email, strict=True))
chosen = st.selectbox("Profile", found.profile_id.tolist(), key="profiles.chosen",
                      format_func=lambda pid: f"{pid} · {emails[pid] or ''}")
details = q.profile(project.id, chosen)
if details is not None:
    traits, timeline = st.columns([1, 2])
    with traits:
        st.subheader("Traits")
        st.json(details, expanded=True)
    with timeline:
        st.subheader("Events")
        # the default height: as many rows as there are (up to ten, then it scrolls)
        st.dataframe(q.profile_timeline(project.id, chosen), hide_index=True, width="stretch")

"""What the top of every page does: the logged-in user's chosen project and view."""

from __future__ import annotations

import streamlit as st

from app.auth import ProjectInfo
from app.controls import View, analytics_view

PROJECT_KEY = "page.project"  # set by main.py after the project picker ran


def current_project() -> ProjectInfo:
    """The project picked in the sidebar; stops the page when there is none to show."""
    project = st.session_state.get(PROJECT_KEY)
    if project is None:
        st.stop()
    return project


def analytics_page(title: str, *, granularity: bool = True, filters: bool = True) -> View:
    project = current_project()
    view = analytics_view(project, granularity=granularity, filters=filters)
    st.title(title)
    caption = (f"{project.name} · {view.date_range.start} – {view.date_range.end} "
               f"({project.timezone})")
    if view.filters:
        caption += " · " + "; ".join(f.label for f in view.filters)
    st.caption(caption)
    return view

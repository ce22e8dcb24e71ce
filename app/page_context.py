"""What the top of every page does: the logged-in user's chosen project and view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from app.auth import ProjectInfo
from app.controls import View, analytics_view
from app.text import markdown_escape, markdown_text
from queries.freshness import is_stale, marts_built_at
from trackhouse.settings import get_settings

PROJECT_KEY = "page.project"  # set by main.py after the project picker ran


def streamlit_cache(function: Callable[..., Any], ttl_s: int) -> Callable[..., Any]:
    """The query layer's cache in the dashboards (main.py installs it: queries.cache.use)."""
    return st.cache_data(ttl=ttl_s, show_spinner=False)(function)


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
    caption = (f"{markdown_escape(project.name)} · {view.date_range.start} – "
               f"{view.date_range.end} ({project.timezone})")
    if view.filters:  # filter values come from the URL: text, never Markdown
        caption += " · " + "; ".join(markdown_text(f.label) for f in view.filters)
    st.caption(caption)
    stale_marts_notice(project)
    return view


def stale_marts_notice(project: ProjectInfo) -> None:
    """A warning while the marts lag more than two schedule intervals behind: the figures
    they give miss what happened since their last complete build."""
    built_at = marts_built_at()
    now = datetime.now(UTC)
    if not is_stale(built_at, now):
        return
    interval = get_settings().marts_interval_minutes
    if built_at is None:
        st.warning("The marts have not been built yet: figures that come from them are missing "
                   "until dbt's first complete run (Dagster's `incremental_marts` job).",
                   icon=":material/update:")
        return
    local = built_at.astimezone(ZoneInfo(project.timezone))
    st.warning(f"The marts are stale: their last successful build was at "
               f"{local:%Y-%m-%d %H:%M} ({project.timezone}), {_age(now - built_at)} ago, "
               f"and they should be rebuilt every {interval} min. Figures may miss recent "
               "events; see the `incremental_marts` job in Dagster.",
               icon=":material/update:")


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min"]
    return " ".join(part for part in parts if part)

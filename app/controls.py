"""The view every analytics page shares — project, date range, granularity, filters — kept in
``st.session_state`` across pages and mirrored into the URL (``st.query_params``) so a view can
be shared: ``?project=demo&range=30d&g=day&f=country|is|DE&f=path|contains|/docs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import streamlit as st

from app.auth import ProjectInfo
from app.text import markdown_text
from queries.filters import (
    FIELDS,
    OP_LABELS,
    PROPERTY_PREFIX,
    Filter,
    FilterError,
    Op,
    parse_url_filters,
)
from queries.periods import (
    PRESET_LABELS,
    DateRange,
    Granularity,
    Preset,
    default_granularity,
    preset_range,
    today_in,
)

STATE = "view"  # st.session_state[STATE] holds the view's plain values
KEPT_PARAMS = ("share",)  # URL parameters others own (app/share.py): kept as they are
DEFAULT_PRESET = Preset.LAST_7_DAYS
PROPERTY_CHOICE = "(event property)"


@dataclass(frozen=True)
class View:
    project: ProjectInfo
    date_range: DateRange
    granularity: Granularity
    filters: tuple[Filter, ...]


def _state() -> dict:
    """The view's values, initialised once per browser session from the URL."""
    if STATE not in st.session_state:
        params = st.query_params
        filters, errors = parse_url_filters(params.get_all("f"))
        st.session_state[STATE] = {
            "project": params.get("project"),
            "preset": params.get("range", DEFAULT_PRESET.value),
            "from": params.get("from"),
            "to": params.get("to"),
            "granularity": params.get("g"),
            "filters": [f.to_url() for f in filters],
            "errors": errors,
        }
    return st.session_state[STATE]


def _parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _sync_url(state: dict) -> None:
    wanted: dict[str, str | list[str]] = {"project": state["project"], "range": state["preset"]}
    if state["preset"] == Preset.CUSTOM:
        wanted |= {"from": state["from"], "to": state["to"]}
    if state["granularity"]:
        wanted["g"] = state["granularity"]
    if state["filters"]:
        wanted["f"] = state["filters"]
    wanted |= {key: st.query_params[key] for key in KEPT_PARAMS if key in st.query_params}
    current = {key: (st.query_params.get_all(key) if key == "f" else st.query_params.get(key))
               for key in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)


def pick_project(projects: list[ProjectInfo]) -> ProjectInfo | None:
    """The project picker (sidebar); a project the user may not see is never selected."""
    state = _state()
    if not projects:
        st.warning("You have no projects yet. An admin can create one or grant you access.")
        return None
    by_id = {p.id: p for p in projects}
    if state["project"] not in by_id:
        state["project"] = projects[0].id
    chosen = st.sidebar.selectbox(
        "Project", list(by_id), index=list(by_id).index(state["project"]),
        format_func=lambda pid: f"{by_id[pid].name} ({by_id[pid].domain or pid})",
        key="view.project",
    )
    state["project"] = chosen
    _sync_url(state)
    return by_id[chosen]


def use_project(project: ProjectInfo) -> ProjectInfo:
    """Fix the view's project without a picker (a share link's): the URL's is ignored."""
    state = _state()
    state["project"] = project.id
    _sync_url(state)
    return project


def _pick_range(tz: str) -> DateRange:
    state = _state()
    presets = list(Preset)
    remembered = Preset(state["preset"]) if state["preset"] in Preset._value2member_map_ \
        else DEFAULT_PRESET
    preset = st.sidebar.selectbox("Date range", presets, index=presets.index(remembered),
                                  format_func=lambda p: PRESET_LABELS[p],
                                  key="view.preset") or remembered
    state["preset"] = preset.value
    if preset is not Preset.CUSTOM:
        return preset_range(preset, tz)
    today = today_in(tz)
    start = _parse_day(state["from"]) or today - timedelta(days=6)
    end = _parse_day(state["to"]) or today
    picked = st.sidebar.date_input("From – to", (start, end), max_value=today, key="view.custom")
    if isinstance(picked, tuple) and len(picked) == 2:
        start, end = picked
    state["from"], state["to"] = start.isoformat(), end.isoformat()
    return DateRange(min(start, end), max(start, end), tz)


def _pick_granularity(date_range: DateRange) -> Granularity:
    state = _state()
    options = list(Granularity)
    current = state["granularity"]
    default = Granularity(current) if current in Granularity._value2member_map_ \
        else default_granularity(date_range)
    chosen = st.sidebar.segmented_control("Granularity", options, default=default,
                                          format_func=str.capitalize, key="view.granularity")
    chosen = chosen or default
    state["granularity"] = chosen.value if chosen != default_granularity(date_range) else None
    return chosen


def _filters_ui() -> tuple[Filter, ...]:
    state = _state()
    filters = [Filter.from_url(text) for text in state["filters"]]
    with st.sidebar.expander(f"Filters ({len(filters)})", expanded=bool(filters)):
        for error in state.pop("errors", []) or []:
            st.warning(f"Ignored a filter from the URL: {markdown_text(error)}")
        for index, item in enumerate(filters):
            left, right = st.columns([5, 1])
            left.caption(markdown_text(item.label))
            if right.button("✕", key=f"filter.remove.{index}", help="Remove this filter"):
                state["filters"].pop(index)
                st.rerun()
        with st.form("filter.add", clear_on_submit=True, border=False):
            field = st.selectbox("Field", [*FIELDS, PROPERTY_CHOICE],
                                 format_func=lambda f: FIELDS[f].label if f in FIELDS else f,
                                 key="filter.field")
            key = st.text_input("Property key (for event properties)", key="filter.key")
            op = st.selectbox("Operator", list(Op), format_func=lambda o: OP_LABELS[o],
                              key="filter.op") or Op.IS
            value = st.text_input("Value", key="filter.value")
            if st.form_submit_button("Add filter"):
                name = f"{PROPERTY_PREFIX}{key.strip()}" if field == PROPERTY_CHOICE else field
                try:
                    state["filters"].append(Filter(name, op, value).to_url())
                except FilterError as error:
                    st.error(markdown_text(error))
                else:
                    st.rerun()
        if filters and st.button("Clear filters", key="filter.clear"):
            state["filters"] = []
            st.rerun()
    return tuple(filters)


def analytics_view(project: ProjectInfo, *, granularity: bool = True,
                   filters: bool = True) -> View:
    """Render the range / granularity / filter controls and return the view they describe."""
    state = _state()
    date_range = _pick_range(project.timezone)
    chosen_granularity = _pick_granularity(date_range) if granularity \
        else default_granularity(date_range)
    chosen_filters = _filters_ui() if filters else ()
    _sync_url(state)
    return View(project, date_range, chosen_granularity, chosen_filters)

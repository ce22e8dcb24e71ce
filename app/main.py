"""Trackhouse dashboards: the Streamlit entry script (``trackhouse app`` runs it).

Nothing but the login page is reachable without logging in: the navigation itself only holds
the analytics pages once ``st.session_state`` has a user, and Admin only for admins. A share
link (``?share=<token>``, app/share.py) opens one project's overview and nothing else.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run app/main.py` puts app/ on sys.path, not the repository root that holds the
# `app`, `accounts` and `warehouse` packages.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import auth, share  # noqa: E402
from app.controls import pick_project, use_project  # noqa: E402
from app.page_context import PROJECT_KEY, streamlit_cache  # noqa: E402
from queries import cache  # noqa: E402
from queries.base import TableMissing  # noqa: E402

cache.use(streamlit_cache)  # the dashboards cache every figure with st.cache_data

PAGES = Path(__file__).parent / "app_pages"

st.set_page_config(page_title="Trackhouse", page_icon=":material/analytics:", layout="wide")

shared = share.share_session()  # ?share=<token>: one project's overview, nothing else
user = None if shared is not None else auth.current_user()
if shared is not None:
    navigation = share.navigation(shared)
    if shared.project is not None and shared.unlocked:
        st.session_state[PROJECT_KEY] = use_project(shared.project)
elif user is None:
    navigation = st.navigation([st.Page(auth.login_page, title="Log in", url_path="login")])
else:
    analytics = [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/monitoring:",
                default=True),
        st.Page(PAGES / "realtime.py", title="Realtime", icon=":material/bolt:"),
        st.Page(PAGES / "events.py", title="Events", icon=":material/ads_click:"),
        st.Page(PAGES / "funnels.py", title="Funnels", icon=":material/filter_alt:"),
        st.Page(PAGES / "retention.py", title="Retention", icon=":material/replay:"),
        st.Page(PAGES / "profiles.py", title="Profiles", icon=":material/person_search:"),
        st.Page(PAGES / "explore.py", title="Explore", icon=":material/explore:"),
    ]
    sections = {"Analytics": analytics}
    if user.is_admin:
        sections["Settings"] = [st.Page(PAGES / "admin.py", title="Admin",
                                        icon=":material/admin_panel_settings:"),
                            st.Page(PAGES / "alerts.py", title="Alerts",
                                    icon=":material/notifications:")]
    navigation = st.navigation(sections)
    # The picker lives in the entry script so its state survives page changes.
    st.session_state[PROJECT_KEY] = pick_project(auth.visible_projects(user))
    auth.sidebar_account(user)
auth.sync_cookie()  # after logging in or out: the browser's login cookie
try:
    navigation.run()
except TableMissing as missing:
    st.info("This page reads tables that do not exist yet: the warehouse migrations or the dbt "
            "models have not run. `trackhouse up` applies the migrations and Dagster builds "
            "the marts on its schedule.")
    st.caption(str(missing))

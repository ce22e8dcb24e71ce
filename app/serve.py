"""The dashboards as served by ``trackhouse app``: ``main.py`` in Streamlit's own ASGI server
(``st.App``, which ``streamlit run`` detects), with Trackhouse's ``Host`` check in front.

Streamlit's own ``server.allowedHosts`` checks only the WebSocket; the check here answers every
request, pages and static files too, so a DNS-rebinding name gets 403 before Streamlit sees it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

# `streamlit run app/serve.py` puts app/ on sys.path, not the repository root.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trackhouse.hosts import AllowedHosts, HostGuard  # noqa: E402
from trackhouse.settings import get_settings  # noqa: E402

_settings = get_settings()
app = st.App(
    "main.py",
    middleware=[Middleware(
        HostGuard,
        allowed=AllowedHosts(_settings.app_allowed_hosts, _settings.app_host),
        setting="TRACKHOUSE_APP_ALLOWED_HOSTS",
    )],
)

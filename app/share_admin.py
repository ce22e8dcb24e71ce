"""The Admin page's share links tab: create, list and revoke public read-only links of a
project's overview. Thin over ``accounts.shares`` (what ``trackhouse share`` runs)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from accounts import shares
from accounts.db import session_scope
from accounts.errors import AccountsError
from accounts.models import utcnow
from app.text import markdown_escape

NEW_LINK_KEY = "admin.share.new_link"
EXPIRY_CHOICES = {"": "Never", "1d": "1 day", "7d": "7 days", "30d": "30 days",
                  "90d": "90 days"}


def _base_url() -> str | None:
    """The address this admin reached the dashboards at (a link that works for them), unless
    ``TRACKHOUSE_APP_PUBLIC_URL`` says otherwise."""
    from trackhouse.settings import get_settings

    if get_settings().app_public_url:
        return None
    try:
        url = st.context.url
    except Exception:  # noqa: BLE001 - no request context (AppTest)
        return None
    if not isinstance(url, str) or "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _status(link: Any, now: Any) -> str:
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at is not None and link.expires_at <= now:
        return "expired"
    return "active"


def share_links_section(user: Any, projects: dict[str, str]) -> None:
    st.caption("A share link opens one project's overview (pages, sources, locations, devices, "
               "with filters) read-only, without a login: no other page and no other project. "
               "Only a hash of its token is kept, so the link is shown once, when created.")
    created = st.session_state.pop(NEW_LINK_KEY, None)
    if created:
        st.success("Share link created. Copy it now: it is shown only once.")
        st.code(created, language=None)
    if projects:
        with st.form("admin.share.create", clear_on_submit=True):
            st.markdown("**New share link**")
            pid = st.selectbox("Project", list(projects), key="admin.share.project",
                               format_func=lambda p: f"{projects[p]} ({p})")
            label = st.text_input("Label (who it is for)", key="admin.share.label")
            password = st.text_input("Password (optional, at least 8 characters)",
                                     type="password", key="admin.share.password")
            expiry = st.selectbox("Expires after", list(EXPIRY_CHOICES),
                                  format_func=lambda e: EXPIRY_CHOICES[e],
                                  key="admin.share.expiry")
            if st.form_submit_button("Create share link") and pid is not None:
                try:
                    with session_scope() as session:
                        _, token = shares.create_share_link(
                            session, project_id=pid, label=label, password=password or None,
                            expires_at=shares.parse_expiry(expiry), created_by=user.email)
                except AccountsError as error:
                    st.error(markdown_escape(error.message))
                else:
                    st.session_state[NEW_LINK_KEY] = shares.share_url(token, _base_url())
                    st.rerun()
    now = utcnow()
    with session_scope() as session:
        links = [{"id": link.id, "project": link.project_id, "label": link.label,
                  "status": _status(link, now), "password": link.has_password,
                  "expires": link.expires_at, "created": link.created_at,
                  "by": link.created_by, "last opened": link.last_opened_at}
                 for link in shares.list_share_links(session)]
    st.dataframe(pd.DataFrame(links, columns=["id", "project", "label", "status", "password",
                                              "expires", "created", "by", "last opened"]),
                 hide_index=True, width="stretch", key="admin.share.list")
    active = {int(str(link["id"])): f"#{link['id']} {link['project']} {link['label']}"
              for link in links if link["status"] == "active"}
    if active:
        with st.form("admin.share.revoke"):
            link_id = st.selectbox("Share link to revoke", list(active),
                                   format_func=lambda i: active[i], key="admin.share.revoke_id")
            if st.form_submit_button("Revoke") and link_id is not None:
                try:
                    with session_scope() as session:
                        shares.revoke_share_link(session, link_id)
                except AccountsError as error:
                    st.error(markdown_escape(error.message))
                else:
                    st.toast("share link revoked")
                    st.rerun()

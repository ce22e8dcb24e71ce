"""Admin (admins only): projects, API clients, users with their project access, the record of
dashboard logins, and public share links."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from accounts import logins, service
from accounts.db import session_scope
from accounts.errors import AccountsError
from app.admin_actions import attempt
from app.auth import current_user
from app.privacy_admin import privacy_section
from app.share_admin import share_links_section
from app.text import markdown_escape

user = current_user()
if user is None or not user.is_admin:  # the navigation hides the page; this guards direct calls
    st.error("Only admins may open this page.")
    st.stop()

st.title("Admin")
SECRET_KEY = "admin.new_secret"


projects_tab, clients_tab, users_tab, logins_tab, shares_tab = st.tabs(
    ["Projects", "API clients", "Users", "Logins", "Share links"])

with session_scope() as session:
    projects = [{"id": p.id, "name": p.name, "domain": p.domain, "timezone": p.timezone,
                 "allowed_origins": ", ".join(p.allowed_origins or [])}
                for p in service.list_projects(session)]
    clients = [{"id": c.id, "project": c.project_id, "name": c.name, "type": c.type,
                "origins": ", ".join(c.allowed_origins or []), "created_at": c.created_at,
                "revoked_at": c.revoked_at} for c in service.list_clients(session)]
    users = [{"id": u.id, "email": u.email, "name": u.name, "admin": u.is_admin,
              "projects": ", ".join(service.user_project_ids(session, u.id))}
             for u in service.list_users(session)]
project_ids = [p["id"] for p in projects]

with projects_tab:
    st.dataframe(pd.DataFrame(projects), hide_index=True, width="stretch")
    with st.form("admin.project.create", clear_on_submit=True):
        st.markdown("**New project**")
        name = st.text_input("Name", key="admin.project.name")
        domain = st.text_input("Domain", key="admin.project.domain")
        timezone = st.text_input("Time zone (IANA)", value="UTC", key="admin.project.tz")
        origins = st.text_input("Allowed origins (comma separated)", key="admin.project.origins")
        if st.form_submit_button("Create project"):
            attempt(lambda s: service.create_project(
                s, name=name, domain=domain, timezone=timezone,
                allowed_origins=[o.strip() for o in origins.split(",") if o.strip()]),
                f"project {name} created", projects_changed=True)
    if project_ids:
        with st.form("admin.project.update"):
            st.markdown("**Edit a project**")
            pid = st.selectbox("Project", project_ids, key="admin.project.edit")
            current = next(p for p in projects if p["id"] == pid)
            new_name = st.text_input("Name", value=current["name"])
            new_domain = st.text_input("Domain", value=current["domain"])
            new_tz = st.text_input("Time zone", value=current["timezone"])
            new_origins = st.text_input("Allowed origins", value=current["allowed_origins"])
            if st.form_submit_button("Save"):
                attempt(lambda s: service.update_project(
                    s, pid, name=new_name, domain=new_domain, timezone=new_tz,
                    allowed_origins=[o.strip() for o in new_origins.split(",") if o.strip()]),
                    f"project {pid} saved", projects_changed=True)

with clients_tab:
    secret = st.session_state.pop(SECRET_KEY, None)
    if secret:
        st.success("Client created. Copy its secret now: it is shown only once.")
        st.code(f"client id: {secret[0]}\nclient secret: {secret[1]}", language=None)
    st.dataframe(pd.DataFrame(clients), hide_index=True, width="stretch")
    if project_ids:
        with st.form("admin.client.create", clear_on_submit=True):
            st.markdown("**New API client**")
            pid = st.selectbox("Project", project_ids, key="admin.client.project")
            client_name = st.text_input("Name", key="admin.client.name")
            client_type = st.selectbox("Type", ["write", "read", "root"], key="admin.client.type")
            client_origins = st.text_input("Allowed origins (comma separated; empty = the "
                                           "project's)", key="admin.client.origins")
            with_secret = st.checkbox("With a secret (server-side or read clients)", value=True,
                                      key="admin.client.secret")
            if st.form_submit_button("Create client"):
                try:
                    with session_scope() as session:
                        created, plain = service.create_client(
                            session, project_id=pid, type=client_type, name=client_name,
                            origins=[o.strip() for o in client_origins.split(",") if o.strip()],
                            with_secret=with_secret)
                        client_id = created.id
                except AccountsError as error:
                    st.error(markdown_escape(error.message))
                else:
                    st.session_state[SECRET_KEY] = (client_id, plain or "(none: origin-only)")
                    st.rerun()
    active = {str(c["id"]): f"{c['name']} ({c['project']}, {c['id']})" for c in clients
              if c["revoked_at"] is None}
    if active:
        with st.form("admin.client.revoke"):
            cid = st.selectbox("Client to revoke", list(active), key="admin.client.revoke_id",
                               format_func=lambda c: active[c])
            if st.form_submit_button("Revoke") and cid is not None:
                attempt(lambda s: service.revoke_client(s, cid), "client revoked")

with users_tab:
    st.dataframe(pd.DataFrame(users), hide_index=True, width="stretch")
    with st.form("admin.user.create", clear_on_submit=True):
        st.markdown("**New user**")
        email = st.text_input("E-mail", key="admin.user.email")
        user_name = st.text_input("Name", key="admin.user.name")
        password = st.text_input("Password", type="password", key="admin.user.password")
        is_admin = st.checkbox("Admin (sees every project)", key="admin.user.admin")
        access = st.multiselect("Projects", project_ids, key="admin.user.projects")
        if st.form_submit_button("Create user"):
            attempt(lambda s: service.create_user(s, email=email, password=password,
                                                  name=user_name, is_admin=is_admin,
                                                  project_ids=access), f"user {email} created")
    if users and project_ids:
        with st.form("admin.user.access"):
            st.markdown("**Project access**")
            emails = {int(str(u["id"])): str(u["email"]) for u in users}
            uid = st.selectbox("User", list(emails), key="admin.access.user",
                               format_func=lambda i: emails[i])
            pid = st.selectbox("Project", project_ids, key="admin.access.project")
            grant, revoke = st.columns(2)
            granting = grant.form_submit_button("Grant access")
            revoking = revoke.form_submit_button("Revoke access")
            if uid is not None and pid is not None and granting:
                attempt(lambda s: service.grant_access(s, uid, pid), "access granted")
            if uid is not None and pid is not None and revoking:
                attempt(lambda s: service.revoke_access(s, uid, pid), "access revoked")

with logins_tab:
    st.caption("The latest dashboard logins, newest first: e-mails as typed (known or not). "
               "Refused: stopped by the delay or the lockout before the password was checked.")
    with session_scope() as session:
        attempts = [{"time": a.at, "outcome": a.outcome, "e-mail": a.email, "IP": a.ip,
                     "user agent": a.user_agent} for a in logins.recent_attempts(session)]
    st.dataframe(pd.DataFrame(attempts, columns=["time", "outcome", "e-mail", "IP",
                                                 "user agent"]),
                 hide_index=True, width="stretch", key="admin.logins")

with shares_tab:
    share_links_section(user, {str(p["id"]): str(p["name"]) for p in projects})

st.divider()
privacy_section(user, project_ids)

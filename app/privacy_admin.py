"""The Admin page's privacy section: export or erase one profile's or device's data, and the
audit list of such requests. Thin over ``lifecycle.privacy`` (what ``trackhouse privacy`` runs).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

EXPORT_KEY = "admin.privacy.export"


def privacy_section(user: Any, project_ids: list[str]) -> None:
    from lifecycle.privacy import PrivacyError, Subject, erase, export, requests

    st.subheader("Privacy requests")
    st.caption("Export everything stored about a profile or a device (GDPR art. 15), or erase "
               "it (art. 17): its rows leave every table and the marts are recomputed without "
               "them. Each request is recorded below with a fingerprint of the id, never the id.")
    with st.form("admin.privacy"):
        project = st.selectbox("Project", project_ids, key="admin.privacy.project")
        kind = st.radio("Subject", ["profile", "device"], horizontal=True,
                        key="admin.privacy.kind")
        value = st.text_input("Profile or device id", key="admin.privacy.id")
        confirmed = st.checkbox("Erase: I understand this cannot be undone",
                                key="admin.privacy.confirm")
        export_column, erase_column = st.columns(2)
        exporting = export_column.form_submit_button("Export")
        erasing = erase_column.form_submit_button("Erase")
    if exporting or erasing:
        try:
            subject = Subject(project or "", kind, value or "")
            if exporting:
                data = export(subject, requested_by=user.email)
                st.session_state[EXPORT_KEY] = (subject.kind, json.dumps(data, indent=2))
                rows = sum(len(r) for r in data["tables"].values())
                st.success(f"{rows} row(s) from {len(data['tables'])} table(s)")
            elif not confirmed:
                st.error("Tick the confirmation to erase.")
            else:
                with st.spinner("erasing and recomputing the marts"):
                    erasure = erase(subject, requested_by=user.email)
                st.success(f"erased {erasure.rows} row(s) in {erasure.seconds:.1f} s")
        except PrivacyError as error:
            st.error(str(error))
    if EXPORT_KEY in st.session_state:
        kind_exported, text = st.session_state[EXPORT_KEY]
        st.download_button("Download the export (JSON)", text, file_name=f"{kind_exported}.json",
                           mime="application/json", key="admin.privacy.download")
    audit = [{"at": r.created_at, "action": r.action, "project": r.project_id,
              "subject": r.subject_kind, "fingerprint": r.subject_fingerprint[:16],
              "by": r.requested_by, "rows": r.rows} for r in requests(limit=50)]
    if audit:
        st.dataframe(pd.DataFrame(audit), hide_index=True, width="stretch")

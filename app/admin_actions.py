"""A change an admin page makes to the metadata database, shown as every admin page shows it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st
from sqlalchemy.orm import Session

from accounts.db import session_scope
from accounts.errors import AccountsError
from app.text import markdown_escape
from lifecycle.project_mirror import sync_projects_or_warn


def attempt(action: Callable[[Session], Any], success: str, *,
            projects_changed: bool = False) -> None:
    """Run an accounts change in one transaction; show its error message or rerun.

    ``projects_changed``: then copy the queued project changes into the warehouse."""
    try:
        with session_scope() as session:
            action(session)
    except AccountsError as error:
        st.error(markdown_escape(error.message))
    else:
        if projects_changed:
            sync_projects_or_warn()
        st.toast(markdown_escape(success))
        st.rerun()

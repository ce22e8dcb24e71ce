"""The Admin page's privacy section (Streamlit's AppTest: the real script run, no browser):
an admin exports a profile's rows, an erasure needs its confirmation, and both requests are
listed in the audit table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from streamlit.testing.v1 import AppTest

MAIN = Path(__file__).resolve().parents[2] / "app" / "main.py"
PASSWORD = "a long enough admin password 42"


def test_admin_exports_and_erasure_needs_confirmation(migrated, ch) -> None:
    from accounts.db import session_scope, upgrade
    from accounts.service import create_project, create_user
    from trackhouse.settings import get_settings

    suffix = uuid.uuid4().hex[:10]
    project, email, profile = f"priv-{suffix}", f"admin-{suffix}@example.com", f"p-{suffix}"
    upgrade()
    with session_scope() as session:
        create_project(session, name=project, project_id=project, mirror=False)
        create_user(session, email=email, password=PASSWORD, is_admin=True)
    now = datetime.now(UTC)
    ch.insert(f"{get_settings().raw_database}.events",
              [[uuid.uuid4(), project, "screen_view", "d1", profile, now, now],
               [uuid.uuid4(), project, "click", "d1", profile, now, now]],
              column_names=["id", "project_id", "name", "device_id", "profile_id",
                            "created_at", "received_at"])

    at = AppTest.from_file(str(MAIN), default_timeout=120)
    at.run()
    at.text_input(key="login.email").input(email)
    at.text_input(key="login.password").input(PASSWORD)
    at.button[0].click().run()
    at.switch_page("app_pages/admin.py").run()
    assert not at.exception, [e.value for e in at.exception]

    at.selectbox(key="admin.privacy.project").select(project)
    at.text_input(key="admin.privacy.id").input(profile)
    next(b for b in at.button if b.label == "Export").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("2 row(s) from 1 table(s)" in s.value for s in at.success)

    next(b for b in at.button if b.label == "Erase").click().run()
    assert any("Tick the confirmation" in e.value for e in at.error)
    [(left,)] = ch.query(
        f"select count() from {get_settings().raw_database}.events "
        "where project_id = {p:String}", parameters={"p": project}).result_rows
    assert left == 2  # nothing erased without the confirmation

    audit = at.dataframe[-1].value
    mine = audit[audit["project"] == project]
    assert list(mine["action"]) == ["export"] and list(mine["by"]) == [email]

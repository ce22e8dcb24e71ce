"""The lifecycle commands' command-line side: options, files and refusals."""

from __future__ import annotations

import json
import stat
import uuid
from datetime import UTC, datetime

from typer.testing import CliRunner

from trackhouse.cli import app

runner = CliRunner()


def test_retention_days_option_sets_and_clears_the_period(migrated) -> None:
    from accounts.db import session_scope, upgrade
    from accounts.service import create_project, get_project

    project = f"cli-{uuid.uuid4().hex[:10]}"
    upgrade()
    with session_scope() as session:
        create_project(session, name=project, project_id=project, mirror=False)
    for given, stored in (("30", 30), ("0", None)):
        result = runner.invoke(app, ["project", "update", project, "--retention-days", given])
        assert result.exit_code == 0, result.output
        with session_scope() as session:
            assert get_project(session, project).retention_days == stored
    result = runner.invoke(app, ["project", "update", project, "--retention-days", "-1"])
    assert result.exit_code == 1 and "retention days" in result.output


def test_export_writes_a_private_json_file(migrated, ch, tmp_path) -> None:
    from trackhouse.settings import get_settings

    project, profile = f"cli-{uuid.uuid4().hex[:10]}", f"p-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    ch.insert(f"{get_settings().raw_database}.events",
              [[uuid.uuid4(), project, "screen_view", "d1", profile, now, now]],
              column_names=["id", "project_id", "name", "device_id", "profile_id",
                            "created_at", "received_at"])
    output = tmp_path / "export.json"
    result = runner.invoke(app, ["privacy", "export", "-p", project, "--profile", profile,
                                 "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    data = json.loads(output.read_text())
    [rows] = data["tables"].values()
    assert rows[0]["profile_id"] == profile


def test_refusals(tmp_path) -> None:
    result = runner.invoke(app, ["privacy", "erase", "-p", "x", "--yes"])
    assert result.exit_code == 2 and "exactly one of --profile and --device" in result.output
    result = runner.invoke(app, ["privacy", "erase", "-p", "x", "--profile", " ", "--yes"])
    assert result.exit_code == 2 and "names nobody" in result.output
    (tmp_path / "something").write_text("x")
    result = runner.invoke(app, ["backup", str(tmp_path)])
    assert result.exit_code == 1 and "not empty" in result.output
    result = runner.invoke(app, ["restore", str(tmp_path)])
    # the message wraps where the path's length puts it
    assert result.exit_code == 1 and "no Trackhouse backup" in " ".join(result.output.split())

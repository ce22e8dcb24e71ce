"""Models on the small-batch path check their columns in macros/delete_insert.sql instead of
through the adapter's on_schema_change probe (docs/decisions/0034): a stored table whose
columns differ from the model's still fails the incremental run, naming the fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from models_scenario import raw_view

from trackhouse.dbt import run_dbt


def test_a_changed_column_set_fails_the_incremental_run(models_warehouse: Any) -> None:
    models = models_warehouse
    now = datetime.now(UTC).replace(microsecond=0)
    models.insert_events([raw_view("schema-changes", "d1", now - timedelta(minutes=5),
                                   now - timedelta(minutes=4))])
    models.dbt("run", "--select", "+daily_metrics")
    models.dbt("run", "--select", "daily_metrics")  # unchanged: the incremental run passes

    # the stored table no longer matches the model, as after a model change without a refresh
    models.client.command(f"alter table {models.analytics}.daily_metrics "
                          "drop column views_per_session")
    result = run_dbt(["run", "--select", "daily_metrics", "--target-path",
                      str(models.target_dir), "--log-path", str(models.target_dir)],
                     models.settings)
    assert not result.success
    [failed] = [r for r in result.result if r.status == "error"]
    assert "The columns of" in failed.message and "Run a full refresh" in failed.message
    assert "views_per_session" in failed.message

    models.dbt("run", "--select", "daily_metrics", "--full-refresh")
    assert models.rows("daily_metrics")[0]["views_per_session"] == 1.0

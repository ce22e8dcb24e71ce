"""A view is replaced only when its compiled SQL or its parents' columns change
(macros/unchanged_views.sql, docs/decisions/0034): a run with nothing changed leaves the view
as it is, a new project time zone (a different compiled SQL) and --full-refresh replace it."""

from __future__ import annotations

from typing import Any

VIEW = "int_events_localized"


def test_views_are_replaced_only_when_they_change(models_warehouse: Any) -> None:
    models = models_warehouse
    database = f"{models.analytics}_intermediate"

    def view() -> tuple[str, str]:
        """(uuid, comment): CREATE OR REPLACE VIEW makes a new table, with a new uuid."""
        return models.client.query(
            "select toString(uuid), comment from system.tables "
            "where database = {db:String} and name = {name:String}",
            parameters={"db": database, "name": VIEW}).result_rows[0]

    models.insert_projects({"views-utc": "UTC"})
    models.dbt("run", "--select", f"+{VIEW}")
    first = view()
    assert first[1].startswith("dbt-view ")

    models.dbt("run", "--select", VIEW)
    assert view() == first

    # a project on another zone: the date expressions branch on it, so the SQL changes
    models.insert_projects({"views-berlin": "Europe/Berlin"})
    models.dbt("run", "--select", f"+{VIEW}")
    second = view()
    assert second[0] != first[0]
    assert second[1].startswith("dbt-view ") and second[1] != first[1]
    definition = models.client.command(
        f"select create_table_query from system.tables where database = '{database}' "
        f"and name = '{VIEW}'")
    assert "Europe/Berlin" in definition

    models.dbt("run", "--select", VIEW, "--full-refresh")
    assert view()[0] != second[0]
    assert view()[1] == second[1]

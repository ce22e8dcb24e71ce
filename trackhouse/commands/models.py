"""Commands of the data models: ``trackhouse dbt ARGS...`` runs dbt on ``dbt_project/``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(
        "dbt",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(dbt)


def dbt(context: typer.Context) -> None:
    """Run dbt on the project against the Trackhouse warehouse, e.g. `trackhouse dbt build`.

    Every argument goes to dbt unchanged (`trackhouse dbt --help` shows dbt's help); the
    connection and database names come from the Trackhouse settings.
    """
    from trackhouse.dbt import run_dbt

    result = run_dbt(context.args or ["--help"])
    raise typer.Exit(0 if result.success else 1)

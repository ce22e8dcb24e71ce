"""Commands of the data models: ``trackhouse dbt ARGS...`` runs dbt on ``dbt_project/``;
``trackhouse docs`` serves the dbt docs site the pipeline publishes."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(
        "dbt",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(dbt)
    app.command("docs")(serve_docs)


def dbt(context: typer.Context) -> None:
    """Run dbt on the project against the Trackhouse warehouse, e.g. `trackhouse dbt build`.

    Every argument goes to dbt unchanged (`trackhouse dbt --help` shows dbt's help); the
    connection and database names come from the Trackhouse settings.
    """
    from trackhouse.dbt import run_dbt

    result = run_dbt(context.args or ["--help"])
    raise typer.Exit(0 if result.success else 1)


def serve_docs(
    host: str = typer.Option(None, help="Bind address (default: TRACKHOUSE_DOCS_HOST)."),
    port: int = typer.Option(None, help="Port (default: TRACKHOUSE_DOCS_PORT, 8081)."),
) -> None:
    """Serve the dbt docs site Dagster publishes after its builds (<data_dir>/dbt_docs), to
    browsers logged in to the dashboards."""
    import uvicorn

    from app.docs_site import docs_app
    from trackhouse.settings import get_settings

    settings = get_settings()
    uvicorn.run(docs_app(settings), host=host or settings.docs_host,
                port=port or settings.docs_port, log_level="warning", server_header=False)

"""``trackhouse migrate-sql``: the raw-schema DDL ``migrate`` would run, for review."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("migrate-sql")(migrate_sql)


def migrate_sql(
    cluster: str = typer.Option(
        None, help="Cluster to lay the raw tables out on (default: TRACKHOUSE_CLICKHOUSE_CLUSTER; "
        "unset: one server)."),
) -> None:
    """Print every statement `trackhouse migrate` runs on an empty warehouse; nothing is run.

    With a cluster: ON CLUSTER, Replicated*MergeTree local tables and Distributed tables
    (docs/decisions/0019), to review before `trackhouse migrate` applies them.
    """
    from trackhouse.settings import get_settings
    from warehouse.cluster import check_name
    from warehouse.migrate import all_statements

    settings = get_settings()
    if cluster is not None:
        try:
            name = check_name(cluster) if cluster else None
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--cluster") from None
        settings = settings.model_copy(update={"clickhouse_cluster": name})
    label = None
    for name, statement in all_statements(settings):
        if name != label:
            typer.echo(f"-- {name}")
            label = name
        typer.echo(f"{statement};\n")

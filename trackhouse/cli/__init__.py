"""The ``trackhouse`` command line: one entry point that starts and manages the stack.

Each component registers its commands from its own module in ``trackhouse/cli/commands/``; the
component code itself is imported only when one of its commands runs, so ``--help`` is fast.
"""

from __future__ import annotations

import logging

import typer

from trackhouse.cli.commands import (
    accounts,
    alerts,
    cluster,
    collector,
    dashboards,
    imports,
    lifecycle,
    models,
    orchestration,
    share,
    stack,
    warehouse,
)

app = typer.Typer(
    help="Trackhouse: self-hosted web and product analytics on ClickHouse, dbt, Dagster "
    "and Streamlit. Settings come from TRACKHOUSE_* environment variables or a .env file.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for module in (stack, warehouse, accounts, dashboards, orchestration, collector, models):
    module.register(app)
lifecycle.register(app)  # privacy, retention, backup and restore
cluster.register(app)  # migrate-sql: the raw-schema DDL, cluster mode
share.register(app)  # public share links
alerts.register(app)  # alerts and e-mail reports
imports.register(app)  # trackhouse import umami|ga4|openpanel


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug output.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # one line per HTTP request is noise at INFO (readiness polls, Dagster's GraphQL client)
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)

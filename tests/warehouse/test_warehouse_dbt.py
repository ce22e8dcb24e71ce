"""dbt-clickhouse, unmodified, builds a small project on the warehouse.

Seed, view, table, the three incremental strategies Trackhouse's models use (default with a
unique key, append, delete+insert), unique/not_null tests, a second incremental run and
``dbt docs generate``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from clickhouse_connect.driver.client import Client
from dbt.cli.main import dbtRunner

from trackhouse.settings import PROJECT_ROOT

PROJECT = Path(__file__).parent / "dbt_mini"


@pytest.fixture
def dbt_project(tmp_path: Path, warehouse_url: str, ch: Client) -> Iterator[tuple[Path, str]]:
    project = tmp_path / "dbt_mini"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    schema = f"dbt_mini_{uuid.uuid4().hex[:8]}"
    url = urlparse(warehouse_url)
    env = {
        "DBT_MINI_HOST": url.hostname or "127.0.0.1",
        "DBT_MINI_PORT": str(url.port or 8123),
        "DBT_MINI_SCHEMA": schema,
        "DBT_MINI_USER": os.environ.get("TRACKHOUSE_CLICKHOUSE_USER", "default"),
        "DBT_MINI_PASSWORD": os.environ.get("TRACKHOUSE_CLICKHOUSE_PASSWORD", ""),
    }
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield project, schema
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        ch.command(f"DROP DATABASE IF EXISTS {schema}")


def dbt(project: Path, *args: str) -> None:
    result = dbtRunner().invoke(
        [
            *args,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--log-path",
            str(project / "logs"),
            "--target-path",
            str(project / "target"),
        ]
    )
    assert result.success, f"dbt {' '.join(args)} failed: {result.exception}"


def test_dbt_build_incremental_runs_and_docs(dbt_project: tuple[Path, str], ch: Client) -> None:
    project, schema = dbt_project
    dbt(project, "build", "--vars", "{batch: 1}")

    def rows(sql: str) -> list[tuple]:
        return ch.query(sql.format(schema=schema)).result_rows

    assert rows("SELECT count() FROM {schema}.people") == [(6,)]
    assert rows("SELECT count() FROM {schema}.people_view") == [(6,)]
    assert rows("SELECT count() FROM {schema}.people_table") == [(6,)]
    assert rows("SELECT id, name FROM {schema}.people_latest ORDER BY id") == [
        (1, "ada"),
        (2, "grace"),
        (3, "linus"),
    ]
    assert rows("SELECT count() FROM {schema}.people_log") == [(3,)]
    assert rows("SELECT id, total_amount FROM {schema}.people_amounts ORDER BY id") == [
        (1, 10.5),
        (2, 20.0),
        (3, 30.25),
    ]

    dbt(project, "build", "--vars", "{batch: 2}")  # the incremental models' second run
    assert rows("SELECT id, name FROM {schema}.people_latest ORDER BY id") == [
        (1, "ada-v2"),
        (2, "grace"),
        (3, "linus"),
        (4, "guido"),
        (5, "ada-updated"),
    ]
    assert rows("SELECT batch, count() FROM {schema}.people_log GROUP BY batch ORDER BY batch") == [
        (1, 3),
        (2, 3),
    ]
    assert rows("SELECT id, total_amount FROM {schema}.people_amounts ORDER BY id") == [
        (1, 21.5),
        (2, 20.0),
        (3, 30.25),
        (4, 40.0),
        (5, 50.0),
    ]

    dbt(project, "docs", "generate")
    catalog = json.loads((project / "target" / "catalog.json").read_text())
    documented = {node["metadata"]["name"] for node in catalog["nodes"].values()}
    assert {"people", "people_view", "people_table", "people_latest"} <= documented


@pytest.mark.embedded_only
@pytest.mark.parametrize("embedded", [True, False])
def test_dbt_grants_on_the_embedded_warehouse(
    dbt_project: tuple[Path, str], ch: Client, embedded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's apply_grants override: on the embedded target a model with ``grants:``
    builds and its grants are skipped with a warning; otherwise dbt's own apply_grants runs
    unchanged (and the embedded engine, which has no grants, refuses it)."""
    project, schema = dbt_project
    macros = project / "macros"
    macros.mkdir()
    shutil.copy(PROJECT_ROOT / "dbt_project" / "macros" / "apply_grants.sql", macros)
    (project / "dbt_project.yml").write_text(
        (project / "dbt_project.yml").read_text() + 'macro-paths: ["macros"]\n'
    )
    (project / "models" / "people_granted.sql").write_text(
        "{{ config(materialized='table', grants={'select': ['analyst']}) }}\n"
        "select id, name from {{ ref('people') }}\n"
    )
    monkeypatch.setenv("TRACKHOUSE_DBT_EMBEDDED", "true" if embedded else "false")
    dbt(project, "seed")
    result = dbtRunner().invoke(
        [
            "run", "--select", "people_granted", "--project-dir", str(project),
            "--profiles-dir", str(project), "--log-path", str(project / "logs"),
            "--target-path", str(project / "target"),
        ]
    )
    log = (project / "logs" / "dbt.log").read_text()
    if embedded:
        assert result.success, result.exception
        assert ch.command(f"SELECT count() FROM {schema}.people_granted") == 6
        assert "grants on" in log and "skipped: the embedded warehouse has no users" in log
    else:
        assert not result.success
        assert "skipped: the embedded warehouse" not in log



@pytest.mark.embedded_only
@pytest.mark.parametrize("overridden", [True, False])
def test_dbt_dictionary_on_the_embedded_warehouse(
    dbt_project: tuple[Path, str], ch: Client, overridden: bool
) -> None:
    """A dictionary model (the README's engine limits): dbt-clickhouse writes the connection's
    password into the dictionary's source, and the embedded engine, whose own `default` user
    has none, refuses it when the dictionary loads; with `connection_overrides` giving an
    empty password the source names none and the dictionary loads."""
    project, schema = dbt_project
    overrides = ", connection_overrides={'password': ''}" if overridden else ""
    (project / "models" / "people_names.sql").write_text(
        "{{ config(materialized='dictionary', fields=[('id', 'UInt64'), ('name', 'String')],"
        f" primary_key='id', layout='HASHED()', lifetime='0'{overrides}) }}}}\n"
        "select toUInt64(id) as id, name from {{ ref('people') }}\n"
    )
    dbt(project, "seed")
    dbt(project, "run", "--select", "people_names")
    lookup = f"SELECT dictGet('{schema}.people_names', 'name', toUInt64(2))"
    if overridden:
        assert ch.command(lookup) == "grace"
    else:
        with pytest.raises(Exception, match="AUTHENTICATION_FAILED"):
            ch.command(lookup)

"""Upgrades from the first schema of every store, holding data, to this version.

- raw tables: migration 0001 alone, with the model tests' scenario in it;
- metadata database: the first Alembic revision, with a project, a user and an API client;
- marts: built by the dbt project as it was when every store had its first schema
  (``first_schema/dbt_project``, the models and macros of that day, docs and tests left out).

Then every raw migration and Alembic revision is applied and the current dbt project runs as a
deployment's scheduled run would (incrementally, on the old marts). Nothing is lost, and every
derived table equals a fresh build of this version from the same events. A new migration joins
this chain by itself (the test applies whatever exists).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from lifecycle_support import differences, snapshot
from models_scenario import ZONES, build

FIRST_DBT_PROJECT = Path(__file__).resolve().parent / "first_schema" / "dbt_project"
PASSWORD_HASH_OF_NOTHING = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def _raw_rows(client: Any, raw: str) -> dict[str, list[str]]:
    out = {}
    for table in ("events", "profiles", "projects"):
        # as text: the column types change (0002), the values must not
        body = client.raw_query(f"select * from {raw}.{table} format TabSeparated")
        out[table] = sorted(body.decode().splitlines())
    return out


@pytest.fixture(scope="module")
def upgraded(models_warehouse, tmp_path_factory) -> dict[str, Any]:
    from alembic import command

    from accounts.db import alembic_config, engine, session_scope, upgrade
    from trackhouse.dbt import run_dbt
    from warehouse.migrate import applied_versions, discover, migrate

    models = models_warehouse
    root = tmp_path_factory.mktemp("upgrade")
    settings = models.settings.model_copy(update={"data_dir": root / "data"})
    client = models.client

    # raw tables at migration 0001 only (the fixture migrated them fully: start again)
    client.command(f"drop database if exists {models.raw} sync")
    first = discover()[0]
    assert first.version == 1
    for statement in first.statements(settings):
        client.command(statement)
    applied_versions(client, settings)  # creates the record table, as migrate() does
    client.insert(f"{models.raw}.schema_migrations", [[first.version, first.name]],
                  column_names=["version", "name"])
    scenario = build()
    models.insert_projects(ZONES)
    models.insert_events(scenario.events)
    models.insert_profile_calls(scenario.profile_calls)
    raw_before = _raw_rows(client, models.raw)

    # the marts as the first dbt project built them
    def dbt(project_dir: Path | None, *args: str) -> None:
        extra = ["--project-dir", str(project_dir), "--profiles-dir", str(project_dir)] \
            if project_dir else []
        result = run_dbt([*args, *extra, "--target-path", str(root / "target"),
                          "--log-path", str(root / "target")], settings)
        assert result.success, f"dbt {args} ({project_dir or 'current'}) failed"

    dbt(FIRST_DBT_PROJECT, "seed")
    dbt(FIRST_DBT_PROJECT, "run")
    first_marts = snapshot(client, settings)

    # the metadata database at its first revision, with data
    settings.data_dir.mkdir(parents=True)
    command.upgrade(alembic_config(settings), "0001")
    with engine(settings).begin() as connection:
        now = sa.text("CURRENT_TIMESTAMP")
        connection.execute(sa.text(
            "insert into projects (id, name, domain, timezone, allowed_origins, created_at, "
            "updated_at) values ('shop', 'Shop', 'shop.example', 'Europe/Berlin', '[]', "
            f"{now}, {now})"))
        connection.execute(sa.text(
            "insert into users (email, name, password_hash, is_admin, created_at) values "
            f"('ada@example.com', 'Ada', :hash, 1, {now})"), {"hash": PASSWORD_HASH_OF_NOTHING})
        connection.execute(sa.text(
            "insert into clients (id, project_id, name, type, secret_hash, allowed_origins, "
            f"created_at) values ('c-1', 'shop', 'web', 'write', null, '[\"*\"]', {now})"))

    # the upgrade
    applied = migrate(client, settings)
    upgrade(settings)
    dbt(None, "seed")
    dbt(None, "run")
    upgraded_marts = snapshot(client, settings)
    raw_after = _raw_rows(client, models.raw)
    with session_scope(settings) as session:
        from accounts.models import Client, Project, User

        metadata = {
            "projects": [(p.id, p.timezone, p.retention_days) for p in
                         session.scalars(sa.select(Project))],
            "users": [(u.email, u.password_hash) for u in session.scalars(sa.select(User))],
            "clients": [(c.id, c.allowed_origins) for c in session.scalars(sa.select(Client))],
        }

    # a fresh build of this version from the same events
    dbt(None, "run", "--full-refresh")
    fresh_marts = snapshot(client, settings)
    return {"applied": [m.version for m in applied], "raw_before": raw_before,
            "raw_after": raw_after, "first_marts": first_marts,
            "upgraded_marts": upgraded_marts, "fresh_marts": fresh_marts,
            "metadata": metadata, "raw_migrations": [m.version for m in discover()]}


def test_every_raw_migration_applies_and_no_row_changes(upgraded: dict[str, Any]) -> None:
    assert upgraded["applied"] == upgraded["raw_migrations"][1:]
    assert upgraded["raw_after"] == upgraded["raw_before"]
    assert upgraded["raw_before"]["events"]


def test_metadata_keeps_its_rows(upgraded: dict[str, Any]) -> None:
    assert upgraded["metadata"] == {
        "projects": [("shop", "Europe/Berlin", None)],
        "users": [("ada@example.com", PASSWORD_HASH_OF_NOTHING)],
        "clients": [("c-1", ["*"])],
    }


def test_marts_equal_a_fresh_build(upgraded: dict[str, Any]) -> None:
    assert upgraded["first_marts"]["sessions"]
    assert differences(upgraded["upgraded_marts"], upgraded["fresh_marts"]) == {}


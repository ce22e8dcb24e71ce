"""Fixture data for the dashboard tests: raw events in the test warehouse, marts built by the
real dbt project, and dashboard users in the metadata database."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # dashboard_fixture beside this file

import dashboard_fixture as fd  # noqa: E402
from dashboard_fixture import ADMIN, PASSWORD, VIEWER, DashboardData  # noqa: E402


@pytest.fixture(scope="session")
def dashboard_data(migrated: None, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[DashboardData]:
    from accounts import service
    from accounts.db import session_scope, upgrade
    from lifecycle.project_mirror import sync_projects
    from trackhouse.dbt import run_dbt
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    now = datetime.now(UTC).replace(microsecond=0)
    events = fd.generate(now)
    client = warehouse()
    client.insert(f"{get_settings().raw_database}.events", fd.rows(events),
                  column_names=fd.COLUMNS)
    upgrade()
    with session_scope() as session:
        service.create_project(session, name="Dash shop", domain="shop.example",
                               timezone=fd.PROJECT_ZONES[fd.SHOP], project_id=fd.SHOP)
        service.create_project(session, name="Dash blog", domain="blog.example",
                               timezone=fd.PROJECT_ZONES[fd.BLOG], project_id=fd.BLOG)
        service.create_user(session, email=ADMIN, password=PASSWORD, name="Ada", is_admin=True)
        service.create_user(session, email=VIEWER, password=PASSWORD, name="Vic",
                            project_ids=[fd.BLOG])
    sync_projects()  # the projects (with their time zones) into trackhouse.projects for dbt
    # a full refresh: these events were received "in the past" (received_at = created_at), so
    # an incremental build after another module's (the orchestration tests') would skip them
    # a target folder of its own: dbt_project/target is the orchestration tests' (they may run
    # at the same time in another pytest-xdist worker)
    dbt_target = tmp_path_factory.mktemp("dbt-target")
    result = run_dbt(["build", "--full-refresh", "--target-path", str(dbt_target)])
    if not result.success:
        failed = [f"{r.node.name}: {r.message}" for r in (result.result or [])
                  if str(r.status) in ("error", "fail")]
        pytest.fail(f"dbt build failed: {result.exception or failed}")
    client.close()
    yield DashboardData(now, events, dbt_target)


@pytest.fixture
def set_marts_built_at(dashboard_data: DashboardData) -> Iterator[Callable[[datetime], None]]:
    """Rewrite the build_info mart as if dbt had last built the marts at a given time; the row
    dbt wrote comes back afterwards (and this process forgets the time it cached)."""
    from queries.freshness import marts_built_at
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    table = f"{get_settings().analytics_database}.build_info"
    client = warehouse()
    original = client.query(f"select built_at, invocation_id from {table}").result_rows

    def rewrite(rows: list) -> None:
        client.command(f"truncate table {table}")
        client.insert(table, rows, column_names=["built_at", "invocation_id"])

    try:
        yield lambda built_at: rewrite([[built_at, "test-build"]])
    finally:
        rewrite(original)
        client.close()
        marts_built_at.clear()


@pytest.fixture
def forget_login_attempts(dashboard_data: DashboardData) -> Iterator[None]:
    """Drop the login attempts a test made: every AppTest and browser login comes from
    127.0.0.1, and failures left behind would delay or lock out the next test's logins."""
    from sqlalchemy import delete, func, select

    from accounts.db import session_scope
    from accounts.models import LoginAttempt

    with session_scope() as session:
        before = session.scalar(select(func.max(LoginAttempt.id))) or 0
    yield
    with session_scope() as session:
        session.execute(delete(LoginAttempt).where(LoginAttempt.id > before))

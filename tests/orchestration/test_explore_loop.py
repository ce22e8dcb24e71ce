"""The analyst's loop, end to end: a new model and its yml added to a copy of the dbt project
are built by the next Dagster run, which also publishes the dbt docs site; the dashboards'
Explore page lists the new mart with its docs and charts it; `trackhouse docs` serves the site
to logged-in browsers only. No Python changes between the steps."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dagster import AssetKey, materialize
from orchestration_support import PROJECT_ID
from support import free_port

ROOT = Path(__file__).resolve().parents[2]
# the first test's setup holds the session's first full build, then a build and a docs
# generation of the copy: on a loaded machine that is more than the suite's 600 s
pytestmark = pytest.mark.timeout(1800)


def readme_example() -> tuple[str, str, str]:
    """The model name, SQL and yml of README's "Add a model" (the test keeps the example
    working as written)."""
    section = (ROOT / "README.md").read_text().split("### Add a model", 1)[1].split("\n## ", 1)[0]
    [sql] = re.findall(r"```sql\n(.*?)```", section, re.S)
    [yml] = re.findall(r"```yaml\n(.*?)```", section, re.S)
    sql, yml = textwrap.dedent(sql), textwrap.dedent(yml)
    name = yaml.safe_load(yml)["models"][0]["name"]
    return name, sql, yml


NEW_MART, MODEL_SQL, MODEL_YML = readme_example()
PASSWORD = "explore loop password"
ADMIN = "explorer@loop.test"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, built_marts: Any,
              raw_events: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The copied project with the new mart, built by a Dagster run of the dbt assets and the
    docs asset, in a data dir of its own (its docs site and metadata database)."""
    from dagster_dbt import DbtProject

    from accounts import service
    from accounts.db import session_scope, upgrade
    from lifecycle.project_mirror import sync_projects
    from orchestration.assets import build_dbt_models
    from orchestration.docs import build_docs_asset
    from orchestration.project import DBT_PROJECT_DIR, apply_dbt_env
    from orchestration.resources import WarehouseResource, dbt_resource
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    assert built_marts.success
    tmp_path = tmp_path_factory.mktemp("explore-loop")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("TRACKHOUSE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    copy = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    (copy / "models" / "marts" / f"{NEW_MART}.sql").write_text(MODEL_SQL)
    (copy / "models" / "marts" / f"{NEW_MART}.yml").write_text(MODEL_YML)
    project = DbtProject(project_dir=copy, profiles_dir=copy)
    apply_dbt_env()
    project.preparer.prepare(project)  # what `trackhouse dagster` does when it (re)loads
    models = build_dbt_models(project)
    docs = build_docs_asset(project, models)
    upgrade()
    with session_scope() as session:
        service.create_project(session, name="Explore loop", domain="loop.test",
                               timezone="UTC", project_id=PROJECT_ID)
        service.create_user(session, email=ADMIN, password=PASSWORD, name="Ex", is_admin=True)
    sync_projects()  # the project's warehouse copy, which the models join
    table = f"`{get_settings().analytics_database}`.`{NEW_MART}`"
    try:
        result = materialize(
            [models, docs],
            resources={"dbt": dbt_resource(project), "warehouse": WarehouseResource()},
            selection=[AssetKey(NEW_MART), AssetKey("dbt_docs")], raise_on_error=False,
        )
        assert result.success
        yield {"result": result, "docs": docs, "models": models, "project": project}
    finally:
        client = warehouse()
        client.command(f"drop table if exists {table}")
        client.close()
        monkeypatch.undo()
        get_settings.cache_clear()


def expected_days(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """(visitors, page views) per UTC day (the test project's zone) of the test events."""
    devices: dict[str, set[str]] = {}
    for row in rows:
        devices.setdefault(row["created_at"].date().isoformat(), set()).add(row["device_id"])
    pageviews = Counter(row["created_at"].date().isoformat() for row in rows
                        if row["name"] == "screen_view")
    return {day: (len(devices[day]), pageviews[day]) for day in devices}


def logged_in_explore(project_id: str) -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
    at.query_params = {"project": project_id, "range": "7d"}
    at.run()
    at.text_input(key="login.email").input(ADMIN)
    at.text_input(key="login.password").input(PASSWORD)
    at.button[0].click().run()
    at.switch_page("app_pages/explore.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_new_mart_reaches_the_explore_page_charted(
    published: dict[str, Any], raw_events: list[dict[str, Any]]
) -> None:
    from trackhouse import dbt_docs

    # the run published the docs site, with the new model and its column docs
    manifest = dbt_docs.read_published_manifest()
    assert manifest is not None
    node = manifest["nodes"][f"model.trackhouse.{NEW_MART}"]
    assert node["columns"]["pageviews"]["description"] == "Page views in that language that day."
    assert (dbt_docs.docs_dir() / "index.html").stat().st_size > 10_000
    assert "catalog.json" in {p.name for p in dbt_docs.docs_dir().iterdir()}

    at = logged_in_explore(PROJECT_ID)
    mart_box = at.selectbox(key="explore.mart")
    assert NEW_MART in mart_box.options
    mart_box.select(NEW_MART).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "per browser language and project day" in " ".join(m.value for m in at.markdown)
    # charted: the default measures are its first two numeric columns, summed per day
    assert at.multiselect(key=f"explore.measures.{NEW_MART}").value == ["visitors", "pageviews"]
    assert at.get("vega_lite_chart"), "no chart drawn"
    [data, columns, _all] = at.dataframe
    charted = {str(row.day): (int(row.visitors), int(row.pageviews))
               for row in data.value.itertuples(index=False)}
    assert charted == expected_days(raw_events)
    documented = dict(zip(columns.value["column"], columns.value["description"], strict=True))
    assert documented["language"] == "Browser language of the events."

    # another aggregate, same rows
    at.selectbox(key=f"explore.aggregate.{NEW_MART}").select("max").run()
    assert not at.exception, [e.value for e in at.exception]


def test_a_second_run_keeps_the_site_and_skips_regeneration(published: dict[str, Any]) -> None:
    from orchestration.resources import WarehouseResource, dbt_resource
    from trackhouse import dbt_docs

    before = dbt_docs.published_fingerprint()
    index_written = (dbt_docs.docs_dir() / "index.html").stat().st_mtime_ns
    result = materialize(
        [published["models"], published["docs"]],
        resources={"dbt": dbt_resource(published["project"]), "warehouse": WarehouseResource()},
        selection=[AssetKey("dbt_docs")],
    )
    [materialization] = result.get_asset_materialization_events()
    assert materialization.materialization.metadata["regenerated"].value is False
    assert dbt_docs.published_fingerprint() == before
    assert (dbt_docs.docs_dir() / "index.html").stat().st_mtime_ns == index_written


def test_the_docs_site_is_served_to_logged_in_browsers_only(published: dict[str, Any]) -> None:
    import os
    import time

    from app.auth import COOKIE_NAME, TOKEN_KEY
    from trackhouse.settings import get_settings

    at = logged_in_explore(PROJECT_ID)
    token = at.session_state[TOKEN_KEY]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # the link on the page points at the docs server of the settings
    assert [b.proto.url for b in at.get("link_button")] == [
        f"http://127.0.0.1:{get_settings().docs_port}/"]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "trackhouse"), "docs", "--port", str(port)],
        env={**os.environ}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=url, timeout=5) as client:
            for _ in range(200):
                try:
                    client.get("/")
                    break
                except httpx.TransportError:
                    if server.poll() is not None:
                        pytest.fail(server.stderr.read().decode() if server.stderr else "exited")
                    time.sleep(0.1)
            refused = client.get("/")
            assert refused.status_code == 401
            assert "Log in" in refused.text
            assert client.get("/manifest.json", cookies={COOKIE_NAME: "forged"}).status_code == 401
            page = client.get("/", cookies={COOKIE_NAME: token})
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assert "dbt" in page.text
            manifest = client.get("/manifest.json", cookies={COOKIE_NAME: token}).json()
            assert f"model.trackhouse.{NEW_MART}" in manifest["nodes"]
            assert client.get("/catalog.json", cookies={COOKIE_NAME: token}).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)

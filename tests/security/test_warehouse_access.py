"""The embedded warehouse: no statement from a web page, no answer to a foreign name, no query
without its password (generated at first start, 0600, used by every component unconfigured)."""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from security_support import FOREIGN_HOST, TRACKHOUSE, stop, wait_for

from trackhouse.dbt import dbt_env
from trackhouse.settings import PROJECT_ROOT, Settings
from warehouse.client import warehouse

pytestmark = pytest.mark.embedded_only

EVIL_ORIGIN = "https://evil.example"
AUTH_FAILED = ("default: Authentication failed: password is incorrect, or there is no user with "
               "such name")


def auth(instance: object) -> dict[str, str]:
    return instance.auth_headers  # type: ignore[attr-defined, no-any-return]


def query(url: str, sql: str, headers: dict[str, str], **params: str) -> httpx.Response:
    return httpx.post(url, params=params, content=sql.encode(), headers=headers, timeout=30)


def test_cross_origin_text_plain_post_does_not_run(embedded_warehouse) -> None:
    url, headers = embedded_warehouse.url, auth(embedded_warehouse)
    session = f"origin-{uuid.uuid4().hex}"
    table = f"pwned_{uuid.uuid4().hex[:12]}"
    page = {"Origin": EVIL_ORIGIN, "Content-Type": "text/plain;charset=UTF-8"}
    for sql, params in (("CREATE TEMPORARY TABLE pwned (x UInt8)", {"session_id": session}),
                        (f"CREATE TABLE default.{table} (x UInt8) ENGINE = Memory", {})):
        # what a page's fetch(..., {method: "POST", mode: "no-cors"}) sends; refused even with
        # the right password, and before any credential is looked at
        for credentials in (headers, {}):
            refused = query(url, sql, {**page, **credentials}, **params)
            assert refused.status_code == 403, refused.text
            assert refused.headers["X-ClickHouse-Exception-Code"] == "497"
            assert "Origin 'https://evil.example'" in refused.text
            assert "TRACKHOUSE_WAREHOUSE_ALLOWED_ORIGINS" in refused.text
    # nothing ran: the session was never created, the table does not exist
    checked = query(url, "SELECT 1", headers, session_id=session, session_check="1")
    assert checked.headers["X-ClickHouse-Exception-Code"] == "372", checked.text
    assert query(url, f"EXISTS TABLE default.{table}", headers).text == "0\n"
    # the same statements without Origin (any ClickHouse client) run
    assert query(url, "SELECT 1", headers, session_id=session).text == "1\n"


def test_foreign_host_is_refused_loopback_names_answer(embedded_warehouse) -> None:
    url, headers = embedded_warehouse.url, auth(embedded_warehouse)
    port = embedded_warehouse.port
    for path in ("/", "/ping", "/?query=SELECT%201"):
        refused = httpx.get(url + path, headers={**headers, "Host": FOREIGN_HOST}, timeout=10)
        assert refused.status_code == 403, (path, refused.text)
        assert "rebind.evil.example" in refused.text
        assert "TRACKHOUSE_WAREHOUSE_ALLOWED_HOSTS" in refused.text
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        answer = query(url, "SELECT 1", {**headers, "Host": host})
        assert answer.status_code == 200 and answer.text == "1\n", (host, answer.text)


def test_wrong_or_missing_credentials_as_clickhouse_answers(embedded_warehouse) -> None:
    url, password = embedded_warehouse.url, embedded_warehouse.password
    wrong = password + "x"
    for refused in (
        query(url, "SELECT 1", {}),
        query(url, "SELECT 1", {"X-ClickHouse-User": "default", "X-ClickHouse-Key": wrong}),
        httpx.post(url, content=b"SELECT 1", auth=("default", wrong), timeout=10),
        query(url, "SELECT 1", {}, user="default", password=wrong),
        query(url, "SELECT 1", {}, user="admin", password=password),
    ):
        assert refused.status_code == 401, refused.text
        assert refused.headers["X-ClickHouse-Exception-Code"] == "516"
        assert refused.text.startswith("Code: 516. DB::Exception: ")
        assert "Authentication failed: password is incorrect" in refused.text
        assert "AUTHENTICATION_FAILED" in refused.text
    assert AUTH_FAILED in query(url, "SELECT 1", {}).text
    for accepted in (
        query(url, "SELECT 1", {"X-ClickHouse-User": "default", "X-ClickHouse-Key": password}),
        httpx.post(url, content=b"SELECT 1", auth=("default", password), timeout=10),
        query(url, "SELECT 1", {}, user="default", password=password),
    ):
        assert accepted.status_code == 200 and accepted.text == "1\n", accepted.text
    log = embedded_warehouse.log_path.read_text()
    assert password not in log and wrong not in log


def test_configured_origin_and_host_are_allowed(tmp_path: Path, root: ModuleType) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRACKHOUSE_CLICKHOUSE_URL"}
    env["TRACKHOUSE_WAREHOUSE_ALLOWED_ORIGINS"] = '["https://notebook.example.com"]'
    env["TRACKHOUSE_WAREHOUSE_ALLOWED_HOSTS"] = '["warehouse.internal", "*.lan.example"]'
    instance = root.EmbeddedWarehouse(host="127.0.0.1", port=root.free_port(),
                                      data_dir=tmp_path / "data", log_path=tmp_path / "log",
                                      env=env)
    instance.start()
    try:
        headers = auth(instance)
        allowed = query(instance.url, "SELECT 1",
                        {**headers, "Origin": "https://notebook.example.com"})
        assert allowed.status_code == 200, allowed.text
        assert query(instance.url, "SELECT 1",
                     {**headers, "Origin": "https://other.example.com"}).status_code == 403
        for host in ("warehouse.internal:8123", "a.lan.example"):
            assert query(instance.url, "SELECT 1", {**headers, "Host": host}).text == "1\n"
        for host in ("lan.example", "warehouse.internal.evil.example", FOREIGN_HOST):
            assert query(instance.url, "SELECT 1", {**headers, "Host": host}).status_code == 403
    finally:
        instance.stop()


@pytest.fixture
def fresh_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: ModuleType
) -> Iterator[tuple[Path, int]]:
    """`trackhouse warehouse` on a data directory of its own, nothing configured (as after
    installation): no password in the environment, no URL."""
    for name in ("TRACKHOUSE_CLICKHOUSE_PASSWORD", "TRACKHOUSE_CLICKHOUSE_URL"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    port = root.free_port()
    log = tmp_path / "warehouse.log"
    env = {**os.environ, "TRACKHOUSE_DATA_DIR": str(data_dir),
           "TRACKHOUSE_WAREHOUSE_PORT": str(port)}
    process = subprocess.Popen([TRACKHOUSE, "warehouse"], env=env, cwd=PROJECT_ROOT,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", process, log, 60)
        yield data_dir, port
    finally:
        stop(process)


def test_first_start_generates_the_password_every_component_uses(
    fresh_install: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, port = fresh_install
    secret = data_dir / "warehouse-password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    password = secret.read_text().strip()
    assert len(password) >= 40
    url = f"http://127.0.0.1:{port}"
    assert query(url, "SELECT 1", {}).status_code == 401  # locked by default
    # every component builds its client (or dbt profile) from the settings: no configuration
    settings = Settings(data_dir=data_dir, warehouse_port=port)
    assert settings.clickhouse_password.get_secret_value() == password
    client = warehouse(settings)
    try:
        assert client.command("SELECT 42") == 42
    finally:
        client.close()
    assert dbt_env(settings)["TRACKHOUSE_DBT_PASSWORD"] == password
    # a component reaching it by URL on the same data directory reads the file too
    by_url = Settings(data_dir=data_dir, clickhouse_url=url)
    assert by_url.clickhouse_password.get_secret_value() == password
    # restarts keep it; TRACKHOUSE_CLICKHOUSE_PASSWORD overrides it
    assert Settings(data_dir=data_dir).clickhouse_password.get_secret_value() == password
    monkeypatch.setenv("TRACKHOUSE_CLICKHOUSE_PASSWORD", "operator-choice")
    assert Settings(data_dir=data_dir).clickhouse_password.get_secret_value() == "operator-choice"

"""Issue 15 findings 3 and 4 in a real browser (Debian's chromium via Playwright).

Finding 4: hostile event names go in through the real collector and worker, dbt builds the
marts, and no page (overview, realtime, events, funnels, retention, profiles, and a shared URL
with a hostile filter) renders them as a link, bold text, a line break or a Markdown link: the
names show as typed.

Finding 3: wrong passwords lock the e-mail out and the right one is then refused; the attempts
are recorded with the browser's IP and user agent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dashboard_fixture as fd
import pytest
from dashboard_fixture import ADMIN, PASSWORD, DashboardData
from playwright.sync_api import Page, expect
from test_browser import ARTIFACTS, dashboard_url, page  # noqa: F401 - fixtures

HOSTILE_NAMES = ["<a href=https://evil.example>x</a>", "<b>bold</b>", "a<br>b",
                 "[clickme](https://evil.example/caption)"]
HOSTILE_FILTER = "[clickme](https://evil.example/caption)"
PROJECT = "dash-hostile"
UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")


@dataclass(frozen=True)
class Hostile:
    project_id: str
    events: int


def _send_through_the_collector(secret_client: str, secret: str) -> int:
    """Eight visitors each view a hostile path and fire the hostile names in order (a funnel
    of four steps); one of them identifies with a hostile first name. Returns the events sent."""
    from fastapi.testclient import TestClient

    from collector.main import create_app

    sent = 0
    with TestClient(create_app(), client=("127.0.0.1", 50000)) as api:
        for visitor in range(8):
            headers = {"openpanel-client-id": secret_client, "openpanel-client-secret": secret,
                       "user-agent": UA, "openpanel-client-ip": f"198.51.100.{visitor + 1}"}
            messages: list[dict[str, Any]] = [{"type": "track", "payload": {
                "name": "screen_view", "properties": {
                "__path": "https://shop.example/<b>bold</b>", "__title": HOSTILE_NAMES[0],
                "label": HOSTILE_NAMES[1]}}}]
            messages += [{"type": "track", "payload": {"name": name,
                                                       "properties": {"label": name}}}
                         for name in HOSTILE_NAMES]
            if visitor == 0:
                messages[-1]["payload"]["profileId"] = "hostile-profile"
            for message in messages:
                answer = api.post("/track", json=message, headers=headers)
                assert answer.status_code == 200, answer.text
                sent += 1
            if visitor == 0:
                answer = api.post("/track", headers=headers, json={
                    "type": "identify", "payload": {"profileId": "hostile-profile",
                                                    "firstName": HOSTILE_NAMES[0],
                                                    "lastName": HOSTILE_NAMES[3]}})
                assert answer.status_code == 200, answer.text
    return sent


@pytest.fixture(scope="module")
def hostile(dashboard_data: DashboardData, redis_server, tmp_path_factory) -> Hostile:
    from accounts import service
    from accounts.db import session_scope
    from lifecycle.project_mirror import sync_projects
    from trackhouse.dbt import run_dbt
    from trackhouse.settings import get_settings
    from warehouse.client import warehouse

    project_id = f"{PROJECT}-{uuid.uuid4().hex[:6]}"
    with session_scope() as session:
        service.create_project(session, name="Dash hostile", domain="shop.example",
                               timezone="UTC", project_id=project_id)
        created, secret = service.create_client(session, project_id=project_id)
        client_id = created.id
    sync_projects()
    assert secret
    sent = _send_through_the_collector(client_id, secret)

    log = (tmp_path_factory.mktemp("worker") / "worker.log").open("wb")
    worker = subprocess.Popen([str(Path(sys.executable).parent / "trackhouse"), "worker"],
                              env={**os.environ, "TRACKHOUSE_WORKER_FLUSH_INTERVAL_MS": "100"},
                              stdout=log, stderr=subprocess.STDOUT)
    raw = warehouse()
    try:
        table = f"{get_settings().raw_database}.events"
        deadline = time.monotonic() + 120
        while True:
            landed = raw.query(f"select count() from {table} where project_id = "
                                  "{p:String}", parameters={"p": project_id}).result_rows[0][0]
            if landed >= sent:
                break
            assert time.monotonic() < deadline, f"{landed} of {sent} events landed"
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(20)
        raw.close()
    result = run_dbt(["build", "--target-path", str(tmp_path_factory.mktemp("dbt-target"))])
    assert result.success, result.exception
    return Hostile(project_id, sent)


# Every <a> (HTML or SVG) pointing at evil.example, every bold element (HTML <b>/<strong>, and
# Plotly's bold tspans) and every <br> inside Plotly text, anywhere in the document.
_MARKUP_FOUND = """
() => {
    const found = [];
    for (const el of document.querySelectorAll("a")) {
        for (const attr of el.attributes) {
            if (attr.value.includes("evil.example")) found.push(`link ${attr.value}`);
        }
    }
    for (const el of document.querySelectorAll("b, strong")) {
        if (/bold|clickme|evil/.test(el.textContent)) found.push(`bold ${el.textContent}`);
    }
    for (const el of document.querySelectorAll("tspan, text")) {
        const style = el.getAttribute("style") || "";
        if (style.includes("bold")) found.push(`plotly bold ${el.textContent}`);
        if (el.textContent === "a" || el.textContent === "b") {
            found.push(`plotly line break ${el.textContent}`);
        }
    }
    for (const el of document.querySelectorAll("a")) {
        if (el.textContent.includes("clickme")) found.push(`markdown link ${el.textContent}`);
    }
    return found;
}
"""


def _assert_no_markup(tab: Page, where: str) -> None:
    found = tab.evaluate(_MARKUP_FOUND)
    tab.screenshot(path=str(ARTIFACTS / f"hostile-{where}.png"), full_page=True)
    assert found == [], f"{where}: {found}"


def _log_in(tab: Page, url: str, email: str = ADMIN, password: str = PASSWORD) -> None:
    tab.goto(url)
    tab.get_by_role("textbox", name="E-mail").fill(email)
    tab.get_by_role("textbox", name="Password").fill(password)
    tab.get_by_role("button", name="Log in").click()


def _open(tab: Page, title: str) -> None:
    tab.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    expect(tab.get_by_role("heading", name=title).first).to_be_visible(timeout=30_000)
    expect(tab.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=60_000)
    tab.wait_for_timeout(1500)  # let Plotly draw


def test_hostile_event_names_render_as_text_on_every_page(
        dashboard_url: str, page: Page, hostile: Hostile,  # noqa: F811 - fixtures
        forget_login_attempts) -> None:
    base = f"{dashboard_url}/?project={hostile.project_id}&range=7d"
    _log_in(page, base)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
    expect(page.locator('[data-testid="stMetricValue"]').first).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1500)
    _assert_no_markup(page, "overview")

    _open(page, "Events")
    legend = page.locator("g.legend text.legendtext")
    expect(legend).to_have_count(len(HOSTILE_NAMES), timeout=30_000)
    # the names show as typed, markup and all
    assert sorted(legend.all_text_contents()) == sorted(HOSTILE_NAMES)
    _assert_no_markup(page, "events")

    _open(page, "Funnels")
    page.get_by_role("tab", name="Build a funnel").click()
    steps = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Steps, in order")
    for name in HOSTILE_NAMES:
        steps.locator("input").click()
        page.get_by_role("option", name=name, exact=True).click()
    labels = page.locator("g.funnellayer text.bartext, g.ytick text")
    expect(page.locator("g.ytick text")).to_have_count(len(HOSTILE_NAMES), timeout=30_000)
    ticks = page.locator("g.ytick text").all_text_contents()
    assert sorted(ticks) == sorted(f"{i}. {n}" for i, n in enumerate(HOSTILE_NAMES, 1)), ticks
    assert labels.count()
    _assert_no_markup(page, "funnels")

    for title in ("Realtime", "Retention", "Profiles"):
        _open(page, title)
        _assert_no_markup(page, title.lower())

    # a shared URL with a hostile filter value: shown as typed in the caption, no link
    page.goto(f"{base}&f={quote('event|is|' + HOSTILE_FILTER, safe='')}")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="clickme")
    expect(caption.first).to_contain_text(HOSTILE_FILTER, timeout=30_000)
    page.wait_for_timeout(1000)
    _assert_no_markup(page, "shared-url")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=30_000)


def test_guessing_in_a_browser_locks_the_email_out(
        dashboard_url: str, page: Page, dashboard_data: DashboardData,  # noqa: F811
        forget_login_attempts) -> None:
    from sqlalchemy import select

    from accounts import service
    from accounts.db import session_scope
    from accounts.logins import LoginPolicy, delay_s
    from accounts.models import LoginAttempt

    email = f"browser.guess.{uuid.uuid4().hex[:6]}@dash.test"
    with session_scope() as session:
        service.create_user(session, email=email, password=PASSWORD, project_ids=[fd.BLOG])
    assert page.context.browser is not None
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        tab.goto(dashboard_url)
        error = tab.locator('[data-testid="stAlert"]')
        for attempt in range(5):
            tab.get_by_role("textbox", name="E-mail").fill(email)
            tab.get_by_role("textbox", name="Password").fill(f"wrong {attempt}")
            tab.get_by_role("button", name="Log in").click()
            # a person waits for the answer (a submit during the delay would be refused)
            _wait_for_attempts(email, attempt + 1,
                               delay_s(attempt + 1, LoginPolicy.from_settings().first_delay_s) + 1)
            expect(error).to_have_text("Wrong e-mail or password.", timeout=30_000)
        tab.get_by_role("textbox", name="Password").fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        _wait_for_attempts(email, 6, 1)
        expect(error).to_contain_text("Too many failed logins for this e-mail",
                                      timeout=30_000)
        tab.screenshot(path=str(ARTIFACTS / "login-locked.png"), full_page=True)
        expect(tab.get_by_role("heading", name="Overview")).to_have_count(0)
    finally:
        context.close()
    with session_scope() as session:
        rows = session.scalars(select(LoginAttempt).where(LoginAttempt.email == email)
                               .order_by(LoginAttempt.id)).all()
    assert [r.outcome for r in rows] == ["failed"] * 5 + ["refused"]
    # the WebSocket's own peer and headers: loopback, and chromium's user agent
    assert {r.ip for r in rows} == {"127.0.0.1"}
    assert all("Chrome" in r.user_agent for r in rows), rows[0].user_agent


def _wait_for_attempts(email: str, count: int, answer_s: float, timeout_s: float = 60) -> None:
    """Until the e-mail has ``count`` finished attempts, then ``answer_s`` for the answer to
    arrive (a failure's delay comes first)."""
    from sqlalchemy import select

    from accounts.db import session_scope
    from accounts.models import LoginAttempt

    deadline = time.monotonic() + timeout_s
    while True:
        with session_scope() as session:
            outcomes = session.scalars(select(LoginAttempt.outcome)
                                       .where(LoginAttempt.email == email)).all()
        if len(outcomes) >= count and "pending" not in outcomes:
            break
        assert time.monotonic() < deadline, outcomes
        time.sleep(0.2)
    time.sleep(answer_s)


@pytest.fixture
def https_app(dashboard_data: DashboardData, tmp_path_factory) -> Iterator[str]:
    """The app served over TLS by Streamlit itself (a self-signed certificate for 127.0.0.1)."""
    import datetime as dt
    import ipaddress

    import httpx
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from support import free_port

    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    port = free_port()
    env = {**os.environ, "STREAMLIT_SERVER_SSL_CERT_FILE": str(folder / "cert.pem"),
           "STREAMLIT_SERVER_SSL_KEY_FILE": str(folder / "key.pem")}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "trackhouse"), "app", "--port", str(port)],
        stdout=(folder / "app.log").open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "no https app"
            try:
                if httpx.get(f"https://127.0.0.1:{port}/_stcore/health", verify=False,
                             timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield f"https://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


def test_the_login_cookie_is_secure_over_https(https_app: str, page: Page,  # noqa: F811
                                               forget_login_attempts) -> None:
    from test_browser import _wait_for_cookie

    from app.auth import COOKIE_NAME

    assert page.context.browser is not None
    context = page.context.browser.new_context(ignore_https_errors=True)
    try:
        tab = context.new_page()
        _log_in(tab, f"{https_app}/?project={fd.SHOP}&range=7d")
        expect(tab.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
        cookie = _wait_for_cookie(context, COOKIE_NAME)
        assert cookie["secure"] is True and cookie["sameSite"] == "Strict"
        assert cookie["httpOnly"] is False  # set by script: Streamlit sends no Set-Cookie
    finally:
        context.close()

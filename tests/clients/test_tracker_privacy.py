"""Trackhouse's tracker and a visitor's privacy choices, in Debian's chromium against the real
collector: Do Not Track and Global Privacy Control are honoured unless the site turns that
off, and a browser carrying ``localStorage.trackhouse_ignore = 'true'`` sends nothing until
the flag is removed."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from clients_support import (
    DESKTOP_CHROME_UA,
    SiteServer,
    Stack,
    make_client_project,
    query_rows,
    wait_for_rows,
)
from test_browser_clients import CASES, EVENTS_SQL, SPA_SETTLE_MS


def _visit(browser: Any, site: SiteServer, stack: Stack, *, init_script: str = "",
           options: dict[str, Any] | None = None, after_load: str = "") -> list[str]:
    """Open the test page, click around, fire a custom event; return the /track requests."""
    context = browser.new_context(user_agent=DESKTOP_CHROME_UA)
    if init_script:
        context.add_init_script(init_script)
    sent: list[str] = []
    context.on("request", lambda request: sent.append(request.url)
               if request.url == f"{stack.url}/track" else None)
    query = f"?tracker={quote(json.dumps(options))}" if options is not None else ""
    try:
        page = context.new_page()
        page.goto(f"{site.url}/ours/{query}")
        page.wait_for_function(CASES[0].ready_js)
        if after_load:
            page.evaluate(after_load)
        page.click("#cta")
        page.evaluate(CASES[0].track_js)
        page.wait_for_timeout(SPA_SETTLE_MS)
    finally:
        context.close()
    return sent


GPC_ON = "Object.defineProperty(navigator, 'globalPrivacyControl', {value: true});"
DNT_ON = "Object.defineProperty(navigator, 'doNotTrack', {value: '1'});"


def test_privacy_signals_are_honoured_by_default(browser: Any, site: SiteServer,
                                                 stack: Stack) -> None:
    project = make_client_project(site.origin, "e2e-default-signals")
    site.placeholders["ours"] = CASES[0].placeholders(stack, project)
    # null: the site says nothing about signals (the page's own default is overridden)
    for signal in (GPC_ON, DNT_ON):
        assert _visit(browser, site, stack, init_script=signal,
                      options={"respectPrivacySignals": None}) == []
    assert query_rows(EVENTS_SQL, {"project": project.project_id}) == []
    # a site may decide otherwise, explicitly
    assert _visit(browser, site, stack, init_script=GPC_ON,
                  options={"respectPrivacySignals": False})
    assert wait_for_rows(EVENTS_SQL, {"project": project.project_id}, 1)


def test_a_browser_excluded_by_its_local_storage_flag_sends_nothing(
    browser: Any, site: SiteServer, stack: Stack
) -> None:
    project = make_client_project(site.origin, "e2e-ignore-flag")
    site.placeholders["ours"] = CASES[0].placeholders(stack, project)
    flag = "localStorage.setItem('trackhouse_ignore', 'true');"
    assert _visit(browser, site, stack, init_script=flag) == []
    # set after the page loaded, it holds back the following events too
    sent = _visit(browser, site, stack, after_load=flag)
    assert len(sent) == 2  # what the page sent on loading: its queued event and page view
    rows = wait_for_rows(EVENTS_SQL, {"project": project.project_id}, 2)
    assert sorted(r["name"] for r in rows) == ["queued_before_init", "screen_view"]
    # any other value (or none) counts the browser again
    assert _visit(browser, site, stack,
                  init_script="localStorage.setItem('trackhouse_ignore', 'false');")

"""Every browser client, unmodified, in Debian's chromium against the real collector.

Each case loads the test site with one client — (a) Trackhouse's /tracker.js, (b) the
official ``@openpanel/web`` from npm, (c) Plausible's ``@plausible-analytics/tracker`` from
npm, (d) Umami's tracker from the ``umami`` npm package — then lands on the page from a
search engine with UTM tags, changes SPA routes (pushState, replaceState, popstate), clicks a
tagged button, fires a custom event with properties, identifies (where the client can), opens
a second page and leaves through an outgoing link. The rows the worker lands in ClickHouse
are then checked: names, paths, titles, referrers, UTM, browser, device, project, one device
and one session across pages, profiles, no duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from clients_support import (
    DESKTOP_CHROME_UA,
    ClientProject,
    SiteServer,
    Stack,
    make_client_project,
    query_rows,
    wait_for_rows,
)

EVENTS_SQL = """
select name, path, query, hash, title, referrer, referrer_name, referrer_type, utm_source,
       utm_medium, utm_campaign, browser, os, device, device_id, session_id, profile_id,
       sdk_name, properties, is_bot, created_at, received_at
from trackhouse.events
where project_id = {project:String}
order by created_at, name
"""
PROFILES_SQL = """
select profile_id, kind, first_name, email, properties
from trackhouse.profiles
where project_id = {project:String}
"""
LANDING_QUERY = "utm_source=newsletter&utm_medium=email&utm_campaign=launch"
SEARCH_REFERRER = "https://www.google.com/"
PARTNER_URL = "https://partner.example/landing?from=us"
SPA_SETTLE_MS = 600  # the trackers wait 50 ms (OpenPanel, ours) to 300 ms (Umami) after a route


@dataclass
class ClientCase:
    name: str
    ready_js: str  # true once the client is loaded and initialised
    identify_js: str | None  # None: the client cannot identify (Plausible)
    track_js: str  # the custom event "signup" with plan=pro, seats=3
    sdk_name: str
    # expected page views in order: (path, a text the query must contain)
    page_views: list[tuple[str, str]]
    outgoing_event: str
    outgoing_property: str
    titles: bool = True  # Plausible sends no titles
    profile_id: str | None = None
    extra_events: dict[str, int] = field(default_factory=dict)
    cta_properties: dict[str, str] = field(default_factory=lambda: {"plan": "pro"})
    session_js: str | None = None  # the session id the client holds, where it exposes one

    def placeholders(self, stack: Stack, project: ClientProject) -> dict[str, str]:
        return {"__API_URL__": stack.url, "__CLIENT_ID__": project.browser_client,
                "__PLAUSIBLE_DOMAIN__": project.plausible_domain,
                "__UMAMI_WEBSITE_ID__": project.umami_website_id}


def _spa(name: str, replace_tracked: bool, popstate_tracked: bool) -> list[tuple[str, str]]:
    views = [(f"/{name}/", "utm_source=newsletter"), (f"/{name}/pricing", "")]
    if replace_tracked:
        views.append((f"/{name}/pricing", "plan=pro"))
    if popstate_tracked:
        views.append((f"/{name}/", "utm_source=newsletter"))
    return [*views, (f"/{name}/second", "")]


CASES = [
    ClientCase(
        name="ours",
        ready_js="typeof window.op === 'function' && typeof window.op.trackhouse === 'string'",
        identify_js="op('identify', {profileId: 'user-ours', firstName: 'Ada', "
                    "email: 'ada@example.com'})",
        track_js="op('track', 'signup', {plan: 'pro', seats: 3})",
        sdk_name="trackhouse-web",
        page_views=_spa("ours", replace_tracked=True, popstate_tracked=True),
        outgoing_event="link_out", outgoing_property="href",
        profile_id="user-ours",
        # queued before the script loaded, on both pages (plain stub, then OpenPanel's Proxy)
        extra_events={"queued_before_init": 2},
        cta_properties={"plan": "pro", "buttonColor": "blue"},
    ),
    ClientCase(
        name="openpanel",
        ready_js="!!window.opClient",
        identify_js="opClient.identify({profileId: 'user-openpanel', firstName: 'Ada', "
                    "email: 'ada@example.com'})",
        track_js="opClient.track('signup', {plan: 'pro', seats: 3})",
        sdk_name="web",
        # The SDK sends no event id or timestamp, so the collector counts the same body from
        # the same visitor once only within the duplicate window (1 s): going back to the
        # landing page 1.8 s later sends exactly the landing page view's body again, and it
        # is a page view of its own.
        page_views=_spa("openpanel", replace_tracked=True, popstate_tracked=True),
        outgoing_event="link_out", outgoing_property="href",
        profile_id="user-openpanel",
        cta_properties={"plan": "pro", "buttonColor": "blue"},
        session_js="opClient.getSessionId()",
    ),
    ClientCase(
        name="plausible",
        ready_js="typeof window.plausible === 'function'",
        identify_js=None,
        track_js="plausible('signup', {props: {plan: 'pro', seats: '3'}})",
        sdk_name="plausible",
        # Plausible counts a page view when the pathname changes: not on replaceState here
        page_views=_spa("plausible", replace_tracked=False, popstate_tracked=True),
        outgoing_event="Outbound Link: Click", outgoing_property="url",
        titles=False,
    ),
    ClientCase(
        name="umami",
        ready_js="!!window.umami",
        identify_js="umami.identify({id: 'user-umami', plan: 'pro'})",
        track_js="umami.track('signup', {plan: 'pro', seats: 3})",
        sdk_name="umami",
        # Umami 2.10 hooks pushState and replaceState, not popstate
        page_views=_spa("umami", replace_tracked=True, popstate_tracked=False),
        outgoing_event="link_out", outgoing_property="href",
        profile_id="user-umami",
    ),
]


def visit(browser: Any, site: SiteServer, case: ClientCase) -> list[str]:
    """What a visitor does: land, browse the SPA, click, sign up, open a page, leave.
    Returns the session id the client held before and after identify (``session_js``)."""
    sessions: list[str] = []
    context = browser.new_context(user_agent=DESKTOP_CHROME_UA,
                                  viewport={"width": 1280, "height": 800})
    context.route("https://partner.example/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<title>Partner</title>partner"))
    try:
        page = context.new_page()
        page.goto(f"{site.url}/{case.name}/?{LANDING_QUERY}", referer=SEARCH_REFERRER)
        page.wait_for_function(case.ready_js)
        page.wait_for_timeout(SPA_SETTLE_MS)
        for button in ("#to-pricing", "#replace-plan", "#back"):
            page.click(button)
            page.wait_for_timeout(SPA_SETTLE_MS)
        page.click("#cta")
        if case.session_js:
            sessions.append(page.evaluate(case.session_js))
        if case.identify_js:
            page.evaluate(case.identify_js)  # a promise (OpenPanel's): awaited, answer kept
        if case.session_js:
            sessions.append(page.evaluate(case.session_js))
        page.evaluate(case.track_js)
        page.wait_for_timeout(300)
        page.click("#second")
        page.wait_for_url(f"**/{case.name}/second")
        page.wait_for_function(case.ready_js)
        page.wait_for_timeout(SPA_SETTLE_MS)
        page.click("#outgoing")
        page.wait_for_url("https://partner.example/**")
        page.wait_for_timeout(300)  # keepalive requests outlive the page; give them a moment
    finally:
        context.close()
    return sessions


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_browser_client_delivers_correct_rows(
    case: ClientCase, browser: Any, site: SiteServer, stack: Stack
) -> None:
    project = make_client_project(site.origin, f"e2e-{case.name}")
    site.placeholders[case.name] = case.placeholders(stack, project)
    sessions = visit(browser, site, case)

    expected = len(case.page_views) + 3 + sum(case.extra_events.values())
    rows = wait_for_rows(EVENTS_SQL, {"project": project.project_id}, expected)
    names = [r["name"] for r in rows]
    assert len(rows) == expected, f"duplicates or strays: {names}"

    # -- page views: paths, queries, titles, in order -----------------------------------
    views = [r for r in rows if r["name"] == "screen_view"]
    assert [(v["path"], case_query(v["query"], q)) for v, (_, q) in
            zip(views, case.page_views, strict=True)] == [(p, True) for p, _ in case.page_views]
    if case.titles:
        assert [v["title"] for v in views] == [
            {"": "Home", "pricing": "Pricing", "second": "Second page"}[p.split("/")[2]]
            + (" - Pro" if "plan=pro" in q else "")
            for p, q in case.page_views
        ]
    landing = views[0]
    assert landing["referrer"] == SEARCH_REFERRER
    assert (landing["referrer_name"], landing["referrer_type"]) == ("Google", "search")
    assert (landing["utm_source"], landing["utm_medium"], landing["utm_campaign"]) == (
        "newsletter", "email", "launch")
    second = views[-1]
    assert second["referrer"].startswith(f"{site.url}/{case.name}/")
    assert second["referrer_type"] == "internal"

    # -- custom, attribute and outgoing-link events ------------------------------------
    by_name = {r["name"]: r for r in rows}
    signup = by_name["signup"]
    assert signup["properties"]["plan"] == "pro" and signup["properties"]["seats"] == "3"
    cta = by_name["cta_click"]
    assert {k: cta["properties"].get(k) for k in case.cta_properties} == case.cta_properties
    outgoing = by_name[case.outgoing_event]
    assert outgoing["properties"][case.outgoing_property] == PARTNER_URL
    # the page it leaves from is on the site: not a referrer source (OpenPanel's has no
    # __path, only the page's document.referrer)
    assert outgoing["referrer_name"] == "" and outgoing["referrer_type"] in ("", "internal")
    for name, count in case.extra_events.items():
        assert names.count(name) == count

    # -- one visitor: same device and session across pages; parsed user agent ----------
    assert {r["device_id"] for r in rows} != {""} and len({r["device_id"] for r in rows}) == 1
    assert_one_live_session(rows)
    assert {(r["browser"], r["os"], r["device"], r["is_bot"]) for r in rows} == {
        ("Chrome", "Linux", "desktop", False)}
    assert {r["sdk_name"] for r in rows} == {case.sdk_name}

    # -- identify -------------------------------------------------------------------------
    if case.profile_id:
        profiles = wait_for_rows(PROFILES_SQL, {"project": project.project_id}, 1, settle_s=0)
        assert [p["profile_id"] for p in profiles] == [case.profile_id]
        if case.name == "umami":
            assert profiles[0]["properties"] == {"plan": "pro"}
        else:
            assert (profiles[0]["first_name"], profiles[0]["email"]) == ("Ada", "ada@example.com")
            # events after identify carry the profile (until the page is left)
            assert signup["profile_id"] == case.profile_id
        if case.session_js:
            # identify's answer leaves the client's live session id as it was
            assert sessions == [signup["session_id"]] * 2


def assert_one_live_session(rows: list[dict[str, Any]]) -> None:
    """One visit is one session: every event carries the live session id of the visit's
    earliest event. The collector opens a session at the first event it receives and moves
    its start back when an earlier-stamped event arrives later (requests sent in the same
    tick race), so only events received before that earliest one may hold the id it had
    before the move."""
    earliest = min(rows, key=lambda r: r["created_at"])
    assert earliest["session_id"]
    raced = [r for r in rows if r["received_at"] < earliest["received_at"]]
    assert len(raced) <= 1, raced
    assert {r["session_id"] for r in rows if r not in raced} == {earliest["session_id"]}


def case_query(query: str, expected_part: str) -> bool:
    return expected_part in query if expected_part else query == ""


def test_tracker_honours_privacy_signals_when_asked(
    browser: Any, site: SiteServer, stack: Stack
) -> None:
    """With respectPrivacySignals (set on the test page) and Global Privacy Control on, the
    tracker loads but sends nothing; Do Not Track likewise."""
    project = make_client_project(site.origin, "e2e-gpc")
    site.placeholders["ours"] = CASES[0].placeholders(stack, project)
    for signal in ("globalPrivacyControl', {value: true}", "doNotTrack', {value: '1'}"):
        context = browser.new_context(user_agent=DESKTOP_CHROME_UA)
        context.add_init_script(f"Object.defineProperty(navigator, '{signal});")
        sent: list[str] = []
        context.on("request", lambda request, sent=sent: sent.append(request.url)
                   if request.url == f"{stack.url}/track" else None)
        try:
            page = context.new_page()
            page.goto(f"{site.url}/ours/")
            page.wait_for_function(CASES[0].ready_js)
            page.click("#to-pricing")
            page.click("#cta")
            page.evaluate(CASES[0].track_js)
            page.wait_for_timeout(SPA_SETTLE_MS)
        finally:
            context.close()
        assert sent == []
    assert query_rows(EVENTS_SQL, {"project": project.project_id}) == []


def test_tracker_retry_after_a_lost_answer_counts_once(
    browser: Any, site: SiteServer, stack: Stack
) -> None:
    """The collector stores the event but the answer is lost (the browser sees a 503): the
    tracker retries with the same __eventId, and the event is stored once."""
    project = make_client_project(site.origin, "e2e-retry")
    site.placeholders["ours"] = CASES[0].placeholders(stack, project)
    deliveries: list[str] = []

    def lose_first_answer(route: Any) -> None:
        request = route.request
        if request.method != "POST" or "retry_probe" not in (request.post_data or ""):
            route.continue_()
            return
        deliveries.append(request.post_data)
        response = route.fetch()  # really delivered to the collector...
        if len(deliveries) == 1:
            route.fulfill(status=503, body="lost")  # ...but the browser is told it failed
        else:
            route.fulfill(response=response)

    context = browser.new_context(user_agent=DESKTOP_CHROME_UA)
    context.route(f"{stack.url}/track", lose_first_answer)
    try:
        page = context.new_page()
        page.goto(f"{site.url}/ours/")
        page.wait_for_function(CASES[0].ready_js)
        page.evaluate("op('track', 'retry_probe', {attempt: 'one'})")
        page.wait_for_timeout(1500)  # first retry after 0.5 s
    finally:
        context.close()
    assert len(deliveries) == 2 and deliveries[0] == deliveries[1]
    rows = wait_for_rows(EVENTS_SQL, {"project": project.project_id}, 2)
    assert [r["name"] for r in rows].count("retry_probe") == 1


def test_tracker_holds_events_until_consent_and_tracks_hash_routes(
    browser: Any, site: SiteServer, stack: Stack
) -> None:
    """init({disabled: true}) holds everything (the landing page view too) until
    op('ready'); trackHashChanges makes a hash route a page view; without apiUrl the events
    go to the server the script came from."""
    project = make_client_project(site.origin, "e2e-consent")
    site.placeholders["ours"] = CASES[0].placeholders(stack, project)
    options = quote(json.dumps({"disabled": True, "trackHashChanges": True, "apiUrl": ""}))
    sent: list[str] = []
    context = browser.new_context(user_agent=DESKTOP_CHROME_UA)
    context.on("request", lambda request: sent.append(request.url)
               if request.url == f"{stack.url}/track" else None)
    try:
        page = context.new_page()
        page.goto(f"{site.url}/ours/?tracker={options}")
        page.wait_for_function(CASES[0].ready_js)
        page.evaluate("op('track', 'before_consent')")
        page.wait_for_timeout(300)
        assert sent == []  # nothing leaves the page before consent
        page.evaluate("op('ready')")
        page.wait_for_timeout(200)
        page.evaluate("location.hash = '#/faq'")
        page.wait_for_timeout(SPA_SETTLE_MS)
    finally:
        context.close()
    rows = wait_for_rows(EVENTS_SQL, {"project": project.project_id}, 4)
    assert sorted(r["name"] for r in rows) == [
        "before_consent", "queued_before_init", "screen_view", "screen_view"]
    views = [r for r in rows if r["name"] == "screen_view"]
    assert [(v["path"], v["hash"]) for v in views] == [("/ours/", ""), ("/ours/", "/faq")]

"""Enrichment with real user agents, IPs, referrers and page URLs (no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from collector_support import UA_ANDROID, UA_CHROME_WINDOWS, UA_GOOGLEBOT, UA_IPHONE

from collector import identity
from collector.enrich.geo import GeoLocator, default_database_path
from collector.enrich.referrer import classify_referrer, utm_from_query
from collector.enrich.useragent import _fast_parse, parse_agent
from collector.ingest import MessageError, flatten_properties, parse_client_time

UA_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
UA_FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
UA_BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"


@pytest.mark.parametrize(
    ("user_agent", "browser", "os", "device", "brand"),
    [
        (UA_CHROME_WINDOWS, "Chrome", "Windows", "desktop", ""),
        (UA_IPHONE, "Mobile Safari", "iOS", "mobile", "Apple"),
        (UA_IPAD, "Mobile Safari", "iOS", "tablet", "Apple"),
        (UA_ANDROID, "Chrome Mobile", "Android", "mobile", "Samsung"),
        (UA_FIREFOX_LINUX, "Firefox", "Linux", "desktop", ""),
    ],
)
def test_user_agents_of_real_browsers(user_agent, browser, os, device, brand) -> None:
    agent = parse_agent(user_agent)
    assert (agent.browser, agent.os, agent.device, agent.brand) == (browser, os, device, brand)
    assert not agent.is_bot and agent.bot_name == ""
    assert agent.browser_version and agent.browser_version[0].isdigit()


@pytest.mark.parametrize("user_agent", [UA_GOOGLEBOT, UA_BINGBOT, "curl/8.4.0",
                                        "python-requests/2.31.0"])
def test_bots_from_the_crawler_list(user_agent) -> None:
    agent = parse_agent(user_agent)
    assert agent.is_bot and agent.device == "bot" and agent.bot_name


def test_accelerated_parser_matches_the_legacy_one() -> None:
    from ua_parser import user_agent_parser as legacy

    for user_agent in (UA_CHROME_WINDOWS, UA_IPHONE, UA_IPAD, UA_ANDROID, UA_GOOGLEBOT):
        fast, slow = _fast_parse(user_agent), legacy.Parse(user_agent)
        for part in ("user_agent", "os", "device"):
            for key, value in fast[part].items():
                assert slow[part].get(key) == value, (user_agent, part, key)


def test_geo_on_the_shipped_dbip_database() -> None:
    assert default_database_path() is not None
    geo = GeoLocator(None)
    us = geo.lookup("8.8.8.8")
    assert us.country == "US" and us.latitude is not None and us.longitude is not None
    gb = geo.lookup("81.2.69.142")
    assert (gb.country, gb.city) == ("GB", "London")
    de = geo.lookup("2a02:8108::1")  # IPv6
    assert de.country == "DE" and de.region
    for unknown in ("10.1.2.3", "127.0.0.1", "::1", "not an ip", ""):
        assert geo.lookup(unknown).country == ""


@pytest.mark.parametrize(
    ("referrer", "name", "kind"),
    [
        ("https://www.google.com/search?q=shoes", "Google", "search"),
        ("https://duckduckgo.com/", "DuckDuckGo", "search"),
        ("https://t.co/abc", "Twitter", "social"),
        ("https://l.facebook.com/l.php?u=x", "Facebook", "social"),
        ("https://mail.google.com/mail/u/0/", "Gmail", "email"),
        ("https://someblog.net/post/1", "someblog.net", "referral"),
        ("https://www.someblog.net/", "someblog.net", "referral"),
        ("https://blog.example.com/post", "", "internal"),  # same site, another subdomain
        ("https://shop.example.com/cart", "", "internal"),
        ("", "", ""),
    ],
)
def test_referrer_classification(referrer, name, kind) -> None:
    found = classify_referrer(referrer, "shop.example.com")
    assert (found.name, found.type) == (name, kind)


def test_utm_and_ref_from_the_page_query() -> None:
    utm = utm_from_query("utm_source=newsletter&utm_medium=email&utm_campaign=spring&x=1")
    assert utm == {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring",
                   "utm_term": "", "utm_content": ""}
    assert utm_from_query("ref=producthunt")["utm_source"] == "producthunt"
    assert utm_from_query("ref=a&utm_source=b")["utm_source"] == "b"


def test_device_id_is_salted_and_stable_within_a_day() -> None:
    first = identity.device_id("salt-1", UA_IPHONE, "81.2.69.142", "p")
    assert first == identity.device_id("salt-1", UA_IPHONE, "81.2.69.142", "p")
    assert first != identity.device_id("salt-2", UA_IPHONE, "81.2.69.142", "p")
    assert first != identity.device_id("salt-1", UA_IPHONE, "81.2.69.143", "p")
    assert first != identity.device_id("salt-1", UA_IPHONE, "81.2.69.142", "q")
    assert len(first) == 32 and int(first, 16) >= 0


def test_properties_flatten_to_text() -> None:
    flat = flatten_properties({"plan": {"tier": "pro", "seats": 3}, "ok": True, "tags": ["a"],
                               "none": None, "price": 9.5})
    assert flat == {"plan.tier": "pro", "plan.seats": "3", "ok": "true", "tags": '["a"]',
                    "price": "9.5"}
    with pytest.raises(MessageError, match="longer than"):
        flatten_properties({"big": "x" * 10_000})


def test_client_time_parsing() -> None:
    assert parse_client_time("2026-03-01T10:00:00Z") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_client_time("2026-03-01T11:00:00+01:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_client_time(1_772_359_200_000) == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_client_time(None) is None
    with pytest.raises(MessageError, match="ISO 8601"):
        parse_client_time("yesterday")

"""User agent -> browser, OS, device type, brand, model; and the bot verdict.

``user-agents`` gives the device type (mobile/tablet/desktop/bot) on top of ua-parser. As
shipped it calls ua-parser's legacy ``user_agent_parser.Parse``, which in ua-parser 1.x is the
slow pure-Python path; here its parser is routed to ``ua_parser.parse`` (the Rust accelerator,
ua-parser-rs) with the same result shape, about 10x faster, and whole verdicts are cached.

Bots come from the ``crawler-user-agents`` list (patterns maintained by the community) plus
the ua-parser device family ``Spider``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ua_parser
import user_agents.parsers
from crawleruseragents import CRAWLER_USER_AGENTS_DATA


def _fast_parse(user_agent: str) -> dict[str, Any]:
    """ua-parser 0.x's ``Parse`` dict, computed by ua-parser 1.x's accelerated resolver."""
    result = ua_parser.parse(user_agent)
    browser, os, device = result.user_agent, result.os, result.device
    return {
        "string": user_agent,
        "user_agent": {
            "family": browser.family if browser else "Other",
            "major": browser.major if browser else None,
            "minor": browser.minor if browser else None,
            "patch": browser.patch if browser else None,
        },
        "os": {
            "family": os.family if os else "Other",
            "major": os.major if os else None,
            "minor": os.minor if os else None,
            "patch": os.patch if os else None,
            "patch_minor": os.patch_minor if os else None,
        },
        "device": {
            "family": device.family if device else "Other",
            "brand": device.brand if device else None,
            "model": device.model if device else None,
        },
    }


class _AcceleratedParser:
    Parse = staticmethod(_fast_parse)


# user_agents.parsers looks ``user_agent_parser.Parse`` up at call time: route it.
user_agents.parsers.user_agent_parser = _AcceleratedParser

# One alternation per chunk, as crawler-user-agents does itself, but keeping which pattern hit.
_CRAWLER_PATTERNS = [
    (re.compile(item["pattern"]), item["pattern"]) for item in CRAWLER_USER_AGENTS_DATA
]
_CRAWLER_ANY = re.compile("|".join(f"(?:{item['pattern']})" for item in CRAWLER_USER_AGENTS_DATA))


@dataclass(frozen=True, slots=True)
class Agent:
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device: str = ""  # desktop | mobile | tablet | bot | "" (unknown)
    brand: str = ""
    model: str = ""
    is_bot: bool = False
    bot_name: str = ""


def _clean(value: str | None) -> str:
    return "" if value in (None, "Other") else str(value)


def bot_name(user_agent: str) -> str:
    """The crawler-user-agents pattern the agent matches, or '' for none."""
    if not _CRAWLER_ANY.search(user_agent):
        return ""
    for pattern, name in _CRAWLER_PATTERNS:
        if pattern.search(user_agent):
            return name.replace("\\", "")
    return "bot"


@lru_cache(maxsize=20_000)
def parse_agent(user_agent: str) -> Agent:
    """Parse one user agent string (cached: real traffic repeats a few thousand strings)."""
    if not user_agent:
        return Agent()
    parsed = user_agents.parse(user_agent)
    crawler = bot_name(user_agent)
    is_bot = bool(crawler) or parsed.is_bot
    if is_bot:
        device = "bot"
    elif parsed.is_tablet:
        device = "tablet"
    elif parsed.is_mobile:
        device = "mobile"
    elif parsed.is_pc:
        device = "desktop"
    else:
        device = ""
    return Agent(
        browser=_clean(parsed.browser.family),
        browser_version=parsed.browser.version_string,
        os=_clean(parsed.os.family),
        os_version=parsed.os.version_string,
        device=device,
        brand=_clean(parsed.device.brand),
        model=_clean(parsed.device.model),
        is_bot=is_bot,
        bot_name=crawler or (_clean(parsed.browser.family) if is_bot else ""),
    )

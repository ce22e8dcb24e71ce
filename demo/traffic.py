"""``trackhouse demo``: realistic traffic through the collector's HTTP API.

Three projects (``demo-shop`` in UTC, ``demo-blog`` in Europe/Berlin, ``demo-app`` in
America/New_York) with thousands of devices from real user agents and IPs across countries,
referrers and UTM campaigns, SPA page views, custom events with properties, a sign-up funnel
with drop-off (``signup_started`` -> ``signup_completed`` -> ``purchase``), identify and
increment calls, and visitors returning over weeks. The history of the last ``days`` days goes
through the import path (``/track/batch?import=true`` with the project's secret client);
the recent visits (today's, or since yesterday noon before today's noon) are sent one event per
request like the web SDK, from the browser client with an ``Origin``.

Projects and clients are created through ``accounts.service`` when absent; the demo clients'
secrets are kept in ``<data_dir>/demo-clients.json`` (mode 600) so a later run reuses them.
Every event carries a deterministic ``__eventId`` and times anchored to the day, so running
the demo twice on one day sends the same events: the collector drops them as duplicates
within its dedup window, and the models keep one row per event id after that.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trackhouse.settings import Settings, get_settings

console = Console()


@dataclass(frozen=True)
class DemoProject:
    project_id: str
    name: str
    domain: str
    timezone: str
    pages: tuple[str, ...]
    custom_events: tuple[tuple[str, dict[str, tuple[str, ...]]], ...]


DEMO_PROJECTS = (
    DemoProject("demo-shop", "Demo Shop", "shop.example.com", "UTC",
                ("/", "/products", "/products/trail-shoes", "/products/rain-jacket",
                 "/products/wool-socks", "/cart", "/pricing", "/about"),
                (("add_to_cart", {"product": ("trail-shoes", "rain-jacket", "wool-socks"),
                                  "price": ("29", "89", "129")}),
                 ("search", {"query": ("shoes", "jacket", "gift", "sale")}))),
    DemoProject("demo-blog", "Demo Blog", "blog.example.org", "Europe/Berlin",
                ("/", "/posts/clickhouse-for-analysts", "/posts/dbt-in-practice",
                 "/posts/privacy-first-analytics", "/tags/data", "/about", "/newsletter"),
                (("share", {"network": ("twitter", "linkedin", "mastodon")}),
                 ("newsletter_subscribe", {"list": ("weekly", "monthly")}))),
    DemoProject("demo-app", "Demo App", "app.example.io", "America/New_York",
                ("/", "/login", "/dashboard", "/reports", "/reports/weekly", "/settings",
                 "/projects/42"),
                (("feature_used", {"feature": ("export", "filters", "share", "alerts")}),
                 ("report_created", {"kind": ("weekly", "funnel", "retention")}))),
)

USER_AGENTS = (
    # desktop
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36 Edg/119.0.2151.97",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    # mobile and tablet
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Safari/537.36",
)
BOT_USER_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
)
# (country, /16 prefixes that DB-IP places there), weighted by the first number
COUNTRIES = (
    (30, "US", ("8.8", "23.20", "24.5", "73.12", "98.10")),
    (12, "GB", ("81.2", "86.128", "92.40")),
    (12, "DE", ("84.128", "91.64", "79.192")),
    (7, "FR", ("90.1", "82.64", "2.1")),
    (7, "IN", ("49.36", "117.200", "106.200")),
    (5, "BR", ("189.20", "200.150")),
    (5, "JP", ("126.1", "210.130")),
    (5, "CA", ("24.114", "99.224", "142.112")),
    (4, "AU", ("101.160", "110.140")),
    (4, "NL", ("77.160", "145.1")),
    (3, "ES", ("83.32", "88.0")),
    (3, "PL", ("83.0", "89.64")),
    (3, "IT", ("79.0", "151.20")),
)
REFERRERS = (
    (35, ""), (25, "https://www.google.com/"), (4, "https://www.bing.com/"),
    (3, "https://duckduckgo.com/"), (6, "https://t.co/x1y2z3"), (5, "https://www.facebook.com/"),
    (4, "https://www.reddit.com/r/analytics/"), (3, "https://www.linkedin.com/feed/"),
    (5, "https://mail.google.com/mail/u/0/"), (5, "https://news.ycombinator.com/"),
    (5, "https://someblog.net/best-tools-2026"),
)
CAMPAIGNS = (
    {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "november_digest"},
    {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand_search"},
    {"utm_source": "twitter", "utm_medium": "social", "utm_campaign": "launch_week"},
    {"ref": "producthunt"},
)
FIRST_NAMES = ("Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Frances", "Edsger")
LAST_NAMES = ("Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson")


def _weighted(rng: random.Random, options: tuple) -> Any:
    return rng.choices([o[1:] if len(o) > 2 else o[1] for o in options],
                       weights=[o[0] for o in options])[0]


@dataclass
class Device:
    key: str
    user_agent: str
    ip: str
    first_day: int  # days before today
    is_bot: bool
    profile_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Credentials:
    server_client: str
    secret: str
    browser_client: str


def ensure_projects(settings: Settings) -> dict[str, Credentials]:
    """Create the demo projects and their clients when absent; reuse them otherwise."""
    from accounts import service
    from accounts.db import session_scope, upgrade
    from accounts.errors import NotFound
    from lifecycle.project_mirror import sync_projects_or_warn

    upgrade(settings)
    path = settings.data_dir / "demo-clients.json"
    stored = orjson.loads(path.read_bytes()) if path.exists() else {}
    result: dict[str, Credentials] = {}
    with session_scope(settings) as session:
        for demo in DEMO_PROJECTS:
            origin = f"https://{demo.domain}"
            try:
                service.get_project(session, demo.project_id)
            except NotFound:
                service.create_project(session, name=demo.name, domain=demo.domain,
                                       timezone=demo.timezone, allowed_origins=[origin],
                                       project_id=demo.project_id)
            known = stored.get(demo.project_id)
            if known and all(_client_usable(session, known[k]) for k in ("server", "browser")):
                result[demo.project_id] = Credentials(known["server"], known["secret"],
                                                      known["browser"])
                continue
            server, secret = service.create_client(session, project_id=demo.project_id,
                                                   name="demo importer")
            browser, _ = service.create_client(session, project_id=demo.project_id,
                                               name="demo website", with_secret=False)
            assert secret is not None
            result[demo.project_id] = Credentials(server.id, secret, browser.id)
    sync_projects_or_warn(settings)  # the new projects' warehouse copy (accounts queued it)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {p: {"server": c.server_client, "secret": c.secret, "browser": c.browser_client}
               for p, c in result.items()}
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    os.chmod(path, 0o600)
    return result


def _client_usable(session: Any, client_id: str) -> bool:
    from accounts import service
    from accounts.errors import NotFound

    try:
        return not service.get_client(session, client_id).is_revoked
    except NotFound:
        return False


class TrafficModel:
    """Deterministic visitors and their events for one project."""

    def __init__(self, demo: DemoProject, seed: int, devices: int, days: int,
                 now: datetime) -> None:
        self.demo = demo
        self.rng = random.Random(f"{seed}:{demo.project_id}")
        self.days = days
        self.now = now
        self.today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        # before noon (UTC) today has few visits yet; anchored to half days, so two runs on one
        # day split history and live traffic alike
        half_day = timedelta(hours=12)
        self.live_since = self.today - half_day if now - self.today < half_day else self.today
        self.zone = ZoneInfo(demo.timezone)
        self.origin = f"https://{demo.domain}"
        self.devices = [self._device(n) for n in range(devices)]
        self.users = 0
        for device in self.devices:
            self._visits(device)

    def _device(self, n: int) -> Device:
        rng = self.rng
        is_bot = rng.random() < 0.03
        prefix = rng.choice(_weighted(rng, COUNTRIES)[1])
        ip = f"{prefix}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
        user_agent = rng.choice(BOT_USER_AGENTS if is_bot else USER_AGENTS)
        key = hashlib.blake2b(f"{self.demo.project_id}:{n}".encode(), digest_size=8).hexdigest()
        # more devices arrive recently than long ago; day 0 is today. An exponential (mean half
        # the window) cut at the window by inverse sampling: clamping its tail instead piled
        # 13% of all devices onto the first day of the history.
        mean = self.days / 2
        cut = 1 - math.exp(-(self.days + 1) / mean)
        first_day = min(self.days, int(-mean * math.log(1 - rng.random() * cut)))
        return Device(f"demo-{key}", user_agent, ip, first_day, is_bot)

    def _visit_start(self, days_ago: int) -> datetime:
        """A local daytime moment of that day, in UTC."""
        day = (self.today - timedelta(days=days_ago)).astimezone(self.zone).date()
        hour = min(23, max(0, int(self.rng.gauss(14, 4))))
        local = datetime(day.year, day.month, day.day, hour, self.rng.randrange(60),
                         self.rng.randrange(60), tzinfo=self.zone)
        return local.astimezone(UTC)

    def _visits(self, device: Device) -> None:
        rng = self.rng
        day = device.first_day
        visit = 0
        while day >= 0:
            self._session(device, self._visit_start(day), first=visit == 0)
            visit += 1
            # returning visitors: fewer with every week that passes
            if rng.random() > (0.45 if device.is_bot else 0.35) * (0.8 ** visit):
                break
            day -= rng.choice((1, 1, 2, 3, 7, 7, 14))

    def _session(self, device: Device, start: datetime, *, first: bool) -> None:
        rng, demo = self.rng, self.demo
        moment = start
        referrer = _weighted(rng, REFERRERS) if first or rng.random() < 0.5 else ""
        query = ""
        if first and rng.random() < 0.2:
            query = "?" + "&".join(f"{k}={v}" for k, v in rng.choice(CAMPAIGNS).items())
        views = 1 + min(int(rng.expovariate(0.45)), 12)
        path = demo.pages[0] if rng.random() < 0.5 else rng.choice(demo.pages)
        for n in range(views):
            url = f"{self.origin}{path}{query if n == 0 else ''}"
            props = {"__path": url, "__title": path.strip("/").replace("-", " ").title() or "Home",
                     "__referrer": referrer if n == 0 else f"{self.origin}/"}
            self._event(device, "screen_view", moment, props)
            if not device.is_bot and rng.random() < 0.15:
                name, choices = rng.choice(demo.custom_events)
                moment += timedelta(seconds=rng.randint(2, 40))
                self._event(device, name, moment, {
                    "__path": url, **{k: rng.choice(v) for k, v in choices.items()}})
            moment += timedelta(seconds=rng.randint(5, 180))
            path = rng.choice(demo.pages)
        if not device.is_bot:
            self._funnel(device, moment, first=first)

    def _funnel(self, device: Device, moment: datetime, *, first: bool) -> None:
        rng = self.rng
        if device.profile_id is None:
            if rng.random() > (0.22 if first else 0.08):
                return
            self._event(device, "signup_started", moment, {"__path": f"{self.origin}/signup"})
            if rng.random() > 0.55:
                return  # drop-off between step 1 and 2
            moment += timedelta(seconds=rng.randint(20, 300))
            self.users += 1
            device.profile_id = f"{self.demo.project_id}-user-{self.users}"
            self._event(device, "signup_completed", moment, {"__path": f"{self.origin}/welcome",
                                                             "plan": rng.choice(("free", "pro"))})
            first_name, last_name = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            self._message(device, moment, {"type": "identify", "payload": {
                "profileId": device.profile_id, "firstName": first_name, "lastName": last_name,
                "email": f"{first_name.lower()}.{self.users}@example.com",
                "properties": {"plan": "pro", "__timestamp": moment.isoformat()}}})
        if rng.random() < 0.35:
            moment += timedelta(seconds=rng.randint(30, 900))
            revenue = rng.choice((900, 1900, 4900, 12900))
            self._event(device, "purchase", moment, {"__path": f"{self.origin}/checkout",
                                                     "__revenue": revenue, "currency": "EUR"})
            self._message(device, moment, {"type": "increment", "payload": {
                "profileId": device.profile_id, "property": "purchases", "value": 1}})

    def _event(self, device: Device, name: str, moment: datetime, props: dict) -> None:
        payload: dict[str, Any] = {"name": name, "properties": {**props,
                                   "__timestamp": moment.isoformat()}}
        if device.profile_id:
            payload["profileId"] = device.profile_id
        self._message(device, moment, {"type": "track", "payload": payload})

    def _message(self, device: Device, moment: datetime, message: dict) -> None:
        if moment > self.now:
            return  # the future has not happened yet
        props = message["payload"].setdefault("properties", {})
        props["__eventId"] = f"{device.key}-{len(device.events)}"
        props["__deviceId"] = device.key
        device.events.append({"at": moment, "message": message})

    def history(self) -> Iterator[dict]:
        """Messages before the recent ones, for the import path (visitor IP and UA per
        message)."""
        for device in self.devices:
            for item in device.events:
                if item["at"] < self.live_since:
                    message = item["message"]
                    props = message["payload"]["properties"]
                    props["__ip"], props["__userAgent"] = device.ip, device.user_agent
                    yield message

    def live(self) -> Iterator[tuple[Device, dict]]:
        """The recent messages, in time order, as a browser would send them."""
        recent = [(item["at"], n, device, item["message"]) for n, device in enumerate(self.devices)
                  for item in device.events if item["at"] >= self.live_since]
        for _, _, device, message in sorted(recent, key=lambda t: (t[0], t[1])):
            yield device, message


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_demo(*, url: str | None = None, devices: int = 3000, days: int = 30, seed: int = 7,
             settings: Settings | None = None) -> dict[str, int]:
    """Send the demo traffic; returns the counts of accepted, duplicate and refused messages."""
    settings = settings or get_settings()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    base = (url or f"http://{settings.collector_host}:{settings.collector_port}").rstrip("/")
    try:
        httpx.get(f"{base}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        raise SystemExit(f"the collector at {base} does not answer ({error}); start the stack "
                         "with `trackhouse up` (or pass --url)") from None
    credentials = ensure_projects(settings)
    now = datetime.now(UTC)
    models = [TrafficModel(demo, seed, devices, days, now) for demo in DEMO_PROJECTS]
    plans = [(m, list(m.history()), list(m.live())) for m in models]
    total = sum(len(h) + len(lv) for _, h, lv in plans)
    # live: the recent messages sent to /track, counted as accepted (its answer, as OpenPanel's,
    # does not tell a duplicate apart)
    counts = {"accepted": 0, "duplicate": 0, "error": 0, "live": 0}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with httpx.Client(base_url=base, timeout=60) as http, Progress(*columns,
                                                                   console=console) as bar:
        task = bar.add_task("sending demo events", total=total)
        for model, history, live in plans:
            creds = credentials[model.demo.project_id]
            bar.update(task, description=f"{model.demo.project_id}: importing history")
            headers = {"openpanel-client-id": creds.server_client,
                       "openpanel-client-secret": creds.secret,
                       "openpanel-sdk-name": "trackhouse-demo"}
            for chunk in _chunks(history, 500):
                answer = http.post("/track/batch", params={"import": "true"},
                                   content=orjson.dumps(chunk),
                                   headers={**headers, "content-type": "application/json"})
                answer.raise_for_status()
                body = answer.json()
                counts["accepted"] += body["accepted"]
                counts["duplicate"] += body["duplicates"]
                counts["error"] += body["errors"]
                bar.advance(task, len(chunk))
            bar.update(task, description=f"{model.demo.project_id}: live traffic")
            origin = model.origin

            def send(item: tuple[Device, dict], creds: Credentials = creds,
                     origin: str = origin) -> int:
                device, message = item
                answer = http.post("/track", content=orjson.dumps(message), headers={
                    "openpanel-client-id": creds.browser_client, "origin": origin,
                    "user-agent": device.user_agent, "x-forwarded-for": device.ip,
                    "content-type": "application/json", "openpanel-sdk-name": "web"})
                return answer.status_code

            with ThreadPoolExecutor(max_workers=8) as pool:
                for status in pool.map(send, live):
                    counts["accepted" if status == 200 else "error"] += 1
                    counts["live"] += 1
                    bar.advance(task)
    console.print(
        f"demo: {counts['accepted']} messages accepted, {counts['duplicate']} duplicates "
        f"(already sent earlier), {counts['error']} refused; projects "
        f"{', '.join(d.project_id for d in DEMO_PROJECTS)}. Events land in ClickHouse within "
        "seconds; the dashboards show them after the next dbt run.")
    return counts

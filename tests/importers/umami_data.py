"""A private PostgreSQL database shaped like Umami v2's (our own DDL after Umami's prisma
schema: website, session, website_event, event_data) filled with generated traffic."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

DDL = """
create table website (
  website_id uuid primary key, name varchar(100) not null, domain varchar(500),
  created_at timestamptz default now());
create table session (
  session_id uuid primary key, website_id uuid not null, browser varchar(20),
  os varchar(20), device varchar(20), screen varchar(11), language varchar(35),
  country char(2), region varchar(20), city varchar(50), distinct_id varchar(50),
  created_at timestamptz default now());
create table website_event (
  event_id uuid primary key, website_id uuid not null, session_id uuid not null,
  visit_id uuid not null, created_at timestamptz default now(),
  url_path varchar(500) not null, url_query varchar(500),
  utm_source varchar(255), utm_medium varchar(255), utm_campaign varchar(255),
  utm_content varchar(255), utm_term varchar(255),
  referrer_path varchar(500), referrer_query varchar(500), referrer_domain varchar(500),
  page_title varchar(500), event_type integer not null default 1, event_name varchar(50),
  tag varchar(50), hostname varchar(100));
create index website_event_website_id_created_at_idx on website_event (website_id, created_at);
create table event_data (
  event_data_id uuid primary key, website_id uuid not null, website_event_id uuid not null,
  data_key varchar(500) not null, string_value varchar(500), number_value decimal(19, 4),
  date_value timestamptz, data_type integer not null, created_at timestamptz default now());
create index event_data_website_event_id_idx on event_data (website_event_id);
"""

PAGES = ["/", "/pricing", "/docs", "/docs/install", "/blog/launch", "/about", "/contact"]
BROWSERS = [("chrome", "Windows 10", "desktop"), ("firefox", "Linux", "desktop"),
            ("ios", "iOS", "mobile"), ("safari", "Mac OS", "laptop")]
PLACES = [("DE", "DE-BE", "Berlin"), ("US", "US-CA", "San Francisco"), ("FR", "FR-IDF", "Paris"),
          ("", "", "")]
REFERRERS = [None, ("www.google.com", "/search", "q=x"), ("news.ycombinator.com", "/", None)]


@dataclass
class UmamiData:
    url: str
    website_id: str
    events: int = 0  # rows of website_event
    bad_times: int = 0  # rows the collector must refuse: before 2000
    bad_keys: int = 0  # rows the collector must refuse: an event-data key over 200 chars
    months: list[str] = field(default_factory=list)


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


@contextmanager
def umami_database(sessions: int, seed: int = 21, start: datetime | None = None,
                   days: int = 61) -> Iterator[UmamiData]:
    """A database of its own with ``sessions`` sessions of traffic from ``start``."""
    name = f"umami_{uuid.uuid4().hex[:10]}"
    with _connect(ADMIN_URL) as admin:
        admin.execute(f'create database "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        with _connect(url) as connection:
            connection.execute(DDL)
            data = UmamiData(url, str(uuid.uuid4()))
            _fill(connection, data, sessions, random.Random(seed),
                  start or datetime(2026, 9, 15, tzinfo=UTC), days)
        yield data
    finally:
        with _connect(ADMIN_URL) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def _fill(connection: psycopg.Connection, data: UmamiData, sessions: int, rng: random.Random,
          start: datetime, days: int) -> None:
    website = data.website_id
    connection.execute("insert into website (website_id, name, domain) values (%s, %s, %s)",
                       (website, "Shop", "shop.example.com"))
    session_rows, event_rows, data_rows = [], [], []
    for number in range(sessions):
        session_id = str(uuid.uuid4())
        browser, os_name, device = rng.choice(BROWSERS)
        country, region, city = rng.choice(PLACES)
        first = start + timedelta(seconds=rng.randrange(days * 86_400))
        session_rows.append((session_id, website, browser, os_name, device, "1920x1080",
                             "en-US", country or None, region or None, city or None,
                             f"user-{number}" if number % 7 == 0 else None, first))
        moment = first
        for _visit in range(rng.randint(1, 3)):
            visit_id = str(uuid.uuid4())
            referrer = rng.choice(REFERRERS)
            for step in range(rng.randint(1, 6)):
                event_id = str(uuid.uuid4())
                page = rng.choice(PAGES)
                custom = step > 0 and rng.random() < 0.25
                utm = ("newsletter", "email", "autumn") if step == 0 and rng.random() < 0.2 \
                    else (None, None, None)
                query = "utm_source=newsletter&utm_medium=email&utm_campaign=autumn" \
                    if utm[0] else None
                event_rows.append((
                    event_id, website, session_id, visit_id, moment, page, query, *utm,
                    *(referrer if referrer and step == 0 else (None, None, None)),
                    f"Title of {page}", 2 if custom else 1, "signup" if custom else None,
                    "shop.example.com"))
                if custom:
                    data_rows.append((str(uuid.uuid4()), website, event_id, "plan",
                                      rng.choice(["free", "pro"]), None, 1))
                    data_rows.append((str(uuid.uuid4()), website, event_id, "seats", None,
                                      rng.randint(1, 50), 2))
                moment += timedelta(seconds=rng.randint(5, 300))
            moment += timedelta(hours=rng.randint(1, 72))
    # refused by the collector, in their own result slots
    session_id = session_rows[0][0]
    for number in range(5):
        event_rows.append((str(uuid.uuid4()), website, session_id, str(uuid.uuid4()),
                           datetime(1999, 6, 1 + number, tzinfo=UTC), "/old", None,
                           None, None, None, None, None, None, "Old", 1, None,
                           "shop.example.com"))
        data.bad_times += 1
    for _ in range(3):
        event_id = str(uuid.uuid4())
        event_rows.append((event_id, website, session_id, str(uuid.uuid4()),
                           start + timedelta(days=3), "/", None, None, None, None, None,
                           None, None, "Home", 2, "odd", "shop.example.com"))
        data_rows.append((str(uuid.uuid4()), website, event_id, "k" * 300, "v", None, 1))
        data.bad_keys += 1
    with connection.cursor() as cursor:
        with cursor.copy(
            "copy session (session_id, website_id, browser, os, device, screen, language, "
            "country, region, city, distinct_id, created_at) from stdin") as copy:
            for row in session_rows:
                copy.write_row(row)
        with cursor.copy(
            "copy website_event (event_id, website_id, session_id, visit_id, created_at, "
            "url_path, url_query, utm_source, utm_medium, utm_campaign, referrer_domain, "
            "referrer_path, referrer_query, page_title, event_type, event_name, hostname) "
            "from stdin") as copy:
            for row in event_rows:
                copy.write_row(row)
        with cursor.copy(
            "copy event_data (event_data_id, website_id, website_event_id, data_key, "
            "string_value, number_value, data_type) from stdin") as copy:
            for row in data_rows:
                copy.write_row(row)
    data.events = len(event_rows)

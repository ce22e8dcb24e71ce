"""Privacy defaults: no IP address is stored anywhere, and device ids rotate with the day.

Events and profile calls from two visitor IPs (IPv4 and IPv6) go through the real collector
and worker into the warehouse, and dbt builds the marts from them; then every column of every
table of every warehouse database, and the whole metadata database, are searched for the
addresses.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collector"))
from collector_support import (  # noqa: E402
    UA_CHROME_WINDOWS,
    make_client,
    make_project,
    start_worker,
    wait_until,
)
from lifecycle_support import metadata_holding, tables_holding  # noqa: E402

# documentation ranges (RFC 5737 / 3849), in forms no other test sends
IPS = ("198.51.100.213", "2001:db8:7a3::5")


def test_no_ip_address_is_stored_anywhere(redis_server, migrated, ch, tmp_path) -> None:
    from trackhouse.dbt import run_dbt
    from trackhouse.settings import get_settings

    settings = get_settings()
    project = make_project()
    worker = start_worker(tmp_path / "worker.log")
    try:
        with make_client() as api:
            for number, ip in enumerate(IPS):
                headers = project.browser_headers(**{"x-forwarded-for": ip})
                for name in ("screen_view", "signup"):
                    answer = api.post("/track", headers=headers, json={
                        "type": "track", "payload": {
                            "name": name, "properties": {"__path": "/p", "plan": "pro"}}})
                    assert answer.status_code == 200, answer.text
                answer = api.post("/track", headers=project.server_headers(
                    **{"x-forwarded-for": ip}), json={"type": "identify", "payload": {
                        "profileId": f"visitor-{number}", "email": "v@example.com"}})
                assert answer.status_code == 200, answer.text

        def landed() -> bool:
            [(rows,)] = ch.query(
                f"select count() from {settings.raw_database}.events "
                "where project_id = {p:String}", parameters={"p": project.project_id},
            ).result_rows
            return rows == 2 * len(IPS)

        wait_until(landed, timeout_s=60, message="events landed")
    finally:
        worker.stop()
    for command in ("seed", "run"):
        result = run_dbt([command, "--target-path", str(tmp_path / "target")], settings)
        assert result.success, command

    databases = [row[0] for row in ch.query(
        "select name from system.databases where name not in "
        "('system', 'INFORMATION_SCHEMA', 'information_schema')").result_rows]
    assert settings.raw_database in databases and settings.analytics_database in databases
    metadata = settings.effective_database_url.removeprefix("sqlite:///")
    for ip in IPS:
        assert tables_holding(ch, databases, ip) == [], ip
        assert metadata_holding(metadata, ip) == [], ip
    # the visitor-derived fields are there: the scan looked at rows that hold visitor data
    [(countries,)] = ch.query(
        f"select count() from {settings.raw_database}.events where project_id = {{p:String}} "
        "and device_id != ''", parameters={"p": project.project_id}).result_rows
    assert countries == 2 * len(IPS)


def test_device_ids_rotate_with_the_daily_salt(redis_server) -> None:
    from collector.identity import SALT_TTL_S, DailySalts, device_id

    day = date(2031, 3, 4)

    async def two_days() -> tuple[tuple[str, str], tuple[str, str]]:
        connection = redis.asyncio.Redis.from_url(redis_server.url)
        try:  # two processes' caches: each reads the shared salts from Redis
            return (await DailySalts(connection).salts(day),
                    await DailySalts(connection).salts(day + timedelta(days=1)))
        finally:
            await connection.aclose()

    (today, yesterday), (tomorrow, today_again) = asyncio.run(two_days())
    assert today_again == today  # every collector process shares the day's salt
    assert len({today, yesterday, tomorrow}) == 3  # a new random salt each day
    visitor = (UA_CHROME_WINDOWS, IPS[0], "p")
    assert device_id(today, *visitor) != device_id(tomorrow, *visitor)
    # ... and none outlives the window a visit across midnight needs
    sync = redis.Redis.from_url(redis_server.url)
    ttl = sync.ttl(f"th:salt:{day.isoformat()}")
    assert 0 < ttl <= SALT_TTL_S <= 3 * 86_400
    sync.close()


@pytest.mark.parametrize("ip", IPS)
def test_a_device_id_does_not_reveal_the_ip(ip: str) -> None:
    """Without the day's salt the id cannot be recomputed from a guessed address."""
    import hashlib

    from collector.identity import device_id

    salted = device_id("a" * 64, UA_CHROME_WINDOWS, ip, "p")
    unsalted = hashlib.blake2b(f"{UA_CHROME_WINDOWS}\x00{ip}\x00p".encode(),
                               digest_size=16).hexdigest()
    assert salted != unsalted and ip not in salted

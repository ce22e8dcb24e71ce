"""Cost of client authentication on the collector's hot path.

    .venv/bin/python bench/auth.py [--database-url URL] [--seconds 2]

Creates a throwaway project with a secret client and a browser client (in a temporary SQLite
file unless --database-url is given), then measures in one run:
- a cold check with a secret (database lookup + argon2 verify at the configured cost);
- cached checks with a secret, and browser checks by Origin (calls/s, one thread);
- the async entry point the collector uses, answered from the caches on the event loop;
- a cold check of a browser client (database lookup only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rate(call: Callable[[], object], seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(1000):
            call()
        done += 1000
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="metadata database (default: temporary SQLite)")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each rate run")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="trackhouse-bench-auth-")
    os.environ["TRACKHOUSE_DATABASE_URL"] = args.database_url or f"sqlite:///{folder}/bench.db"
    # No warehouse needed: the project is created without mirroring.
    from accounts import auth, service
    from accounts.db import safe_url, session_scope, upgrade

    upgrade()
    with session_scope() as session:
        project = service.create_project(
            session, name="Bench", project_id=f"bench-{os.getpid()}",
            allowed_origins=["https://shop.example", "*.shop.example"], mirror=False)
        secret_client, secret = service.create_client(session, project_id=project.id)
        browser, _ = service.create_client(session, project_id=project.id, with_secret=False)
    assert secret is not None
    origin = "https://www.shop.example"

    cold = []
    for _ in range(5):
        auth.reset_auth_cache()
        started = time.perf_counter()
        auth.authenticate_client(secret_client.id, secret, None)
        cold.append(time.perf_counter() - started)
    cold_browser = []
    for _ in range(5):
        auth.reset_auth_cache()
        started = time.perf_counter()
        auth.authenticate_client(browser.id, None, origin)
        cold_browser.append(time.perf_counter() - started)

    auth.authenticate_client(secret_client.id, secret, None)
    auth.authenticate_client(browser.id, None, origin)
    cached_secret = rate(lambda: auth.authenticate_client(secret_client.id, secret, None),
                         args.seconds)
    cached_origin = rate(lambda: auth.authenticate_client(browser.id, None, origin), args.seconds)

    async def async_rate() -> float:
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            for _ in range(1000):
                await auth.authenticate_client_async(browser.id, None, origin)
            done += 1000
        return done / (time.perf_counter() - started)

    cached_async = asyncio.run(async_rate())
    shutil.rmtree(folder, ignore_errors=True)
    print(f"database: {safe_url()}")
    print(f"cold check with secret (DB + argon2): median {statistics.median(cold) * 1000:.1f} ms")
    print(f"cold check by Origin (DB only):       median "
          f"{statistics.median(cold_browser) * 1000:.2f} ms")
    print(f"cached check with secret:             {cached_secret:,.0f} calls/s "
          f"({1e6 / cached_secret:.1f} us each)")
    print(f"cached check by Origin:               {cached_origin:,.0f} calls/s "
          f"({1e6 / cached_origin:.1f} us each)")
    print(f"cached async check by Origin:         {cached_async:,.0f} calls/s")
    print(f"cold/cached ratio with secret:        {statistics.median(cold) * cached_secret:,.0f}x")


if __name__ == "__main__":
    main()

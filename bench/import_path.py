"""The collector's CPU per event on its import path against its ordinary path, in-process.

    .venv/bin/python bench/import_path.py [--events 1000] [--rounds 20] [--profile import]

Runs ``ingest_messages`` (validation, enrichment, ids, the accept script's round trip to a
private redis-server) on batches of ``--events`` messages, as ``/track/batch`` does after
decoding the body, and prints this process's CPU microseconds per event (``process_time``:
Redis's own CPU is not counted; the HTTP layer is not run) for three kinds of batch:

- ``import``: what the importers send with ``?import=true``: the visitor's own device id,
  event id and time, and the columns they know (``__os``, ``__browser``, ``__country``...);
- ``import-plain``: imports without those columns (``bench/ingest.py``'s batch phase);
- ``live``: a server-side SDK's live batch (sessions decided in Redis).

The kinds alternate round by round, so machine load weighs on each alike; the figure is the
median round. ``--profile KIND`` prints a cProfile of that kind instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# the test suite's helper; tests/ leaves sys.path again, or its collector/ folder would shadow
# the package of that name
sys.path.insert(0, str(ROOT / "tests"))
from conftest import start_redis  # noqa: E402

sys.path.remove(str(ROOT / "tests"))

UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")
BROWSERS = (("Chrome", "120.0"), ("Firefox", "121.0"), ("Safari", "17.2"), ("Edge", "120.0"))
PLACES = (("DE", "Berlin", "Berlin"), ("US", "California", "San Francisco"),
          ("FR", "Ile-de-France", "Paris"), ("GB", "England", "London"))


def messages(kind: str, count: int, round_: int) -> list[dict[str, Any]]:
    batch = []
    for n in range(count):
        unique = f"{kind}-{round_}-{n}"
        properties: dict[str, Any] = {
            "__eventId": unique, "__path": f"https://bench.example.com/p/{n % 50}",
            "__referrer": "https://www.google.com/", "plan": ("free", "pro")[n % 2]}
        if kind != "live":
            properties["__timestamp"] = (f"2026-0{1 + n % 9}-1{n % 10}T{n % 24:02d}:"
                                         f"{n % 60:02d}:{(n * 7) % 60:02d}.{n % 1000:03d}Z")
        if kind == "import":
            browser, places = BROWSERS[n % 4], PLACES[n // 4 % 4]
            properties.update({
                "__deviceId": f"visitor-{n % 300}", "__os": ("Windows", "macOS")[n % 2],
                "__browser": browser[0], "__browser_version": browser[1],
                "__device": ("desktop", "mobile")[n % 2], "__country": places[0],
                "__region": places[1], "__city": places[2], "__language": "en-US",
                "__screen": "1920x1080", "__title": f"Page {n % 50}"})
        else:
            properties["__ip"] = f"81.2.{n % 250}.{n // 250 % 20 + 1}"
        batch.append({"type": "track", "payload": {"name": "screen_view",
                                                   "properties": properties}})
    return batch


async def run(args: argparse.Namespace, redis_url: str) -> None:
    from redis.asyncio import Redis

    from accounts.auth import AuthenticatedClient
    from collector import ingest
    from collector.enrich.geo import GeoLocator
    from trackhouse.settings import get_settings

    settings = get_settings()
    redis = Redis.from_url(redis_url)
    services = ingest.Services(settings=settings, redis=redis,
                               geo=GeoLocator(settings.collector_geo_db_path))
    client = AuthenticatedClient(client_id="bench", project_id="bench-import", type="write",
                                 has_secret=True, allowed_origins=(), project_timezone="UTC")

    async def one(kind: str, round_: int) -> float:
        batch = messages(kind, args.events, round_)
        context = ingest.IngestContext(services=services, client=client, ip="127.0.0.1",
                                       user_agent=UA, importing=kind != "live")
        started = time.process_time()
        results = await ingest.ingest_messages(batch, context)
        spent = time.process_time() - started
        assert all(r.status == "accepted" for r in results), results[0]
        return spent / args.events * 1e6

    kinds = ("import", "import-plain", "live")
    for kind in kinds:  # warm the caches and the script
        await one(kind, -1)
    # as the collector's lifespan does (collector.main): what lives on leaves the collector's
    # sight, and its young generation is collected every 10,000 allocations
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for round_ in range(args.rounds):
            await one(args.profile, round_)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    figures: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_ in range(args.rounds):
        for kind in kinds:
            figures[kind].append(await one(kind, round_))
    for kind in kinds:
        print(f"{kind:13} {statistics.median(figures[kind]):6.1f} us/event of collector CPU "
              f"(median of {args.rounds} rounds of {args.events}; min "
              f"{min(figures[kind]):.1f})")
    await services.accept.connections.close()
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--profile", choices=("import", "import-plain", "live"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-path-") as scratch:
        server = start_redis(Path(scratch))
        try:
            asyncio.run(run(args, server.url))
        finally:
            server.process.terminate()
            server.process.wait(10)


if __name__ == "__main__":
    main()

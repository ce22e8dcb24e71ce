"""``pipeline.AcceptGroups``: concurrent requests' accept calls become one script call per
group, each request getting its own answer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import hiredis
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from collector.buffer import BUFFER_KEYS, AcceptLimits, AcceptRequest
from collector.pipeline import AcceptGroups, PrivateConnections

LIMITS = AcceptLimits(backlog_limit=10**9, session_idle_ms=1_800_000, event_ids_ttl_s=60,
                      request_window_ms=10_000)


def request(rows: int, project: str = "p", token: str = "") -> AcceptRequest:
    tokens = [token or uuid.uuid4().hex for _ in range(rows)]
    return AcceptRequest(project=project, day=date(2026, 11, 27), limits=(),
                         events_blob=b"\n".join(b'{"n":1}' for _ in range(rows)),
                         profiles_blob=b"", layout=b"e" * rows,
                         tokens="\0".join(tokens).encode(), live_rows=[])


def test_groups_are_cut_by_requests_rows_and_window() -> None:
    groups = AcceptGroups(None, LIMITS, max_requests=3, max_rows=10)  # type: ignore[arg-type]
    batch = [((request(rows), window), None) for rows, window in
             [(1, 7), (1, 7), (1, 7), (1, 7),  # a 4th request starts a group
              (9, 7), (2, 7),  # 1 + 9 rows fit, 2 more do not
              (1, 8),  # a new dedup window starts a group
              (50, 8), (1, 8)]]  # a request over max_rows goes alone
    sizes = [[len(entry[0][0].layout) for entry in part] for part in groups._parts(batch)]
    assert sizes == [[1, 1, 1], [1, 9], [2], [1], [50], [1]]


def test_concurrent_requests_share_script_calls(redis_server) -> None:
    async def scenario() -> tuple[list, int, int]:
        redis = Redis.from_url(redis_server.url)
        try:
            before = (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
            # buffer keys of its own: the rows are not events for a worker to land
            buffer_keys = tuple(f"test-groups-{uuid.uuid4().hex}:{n}"
                                for n in range(len(BUFFER_KEYS)))
            groups = AcceptGroups(redis, LIMITS, buffer_keys=buffer_keys)
            window = uuid.uuid4().int % 10**12 + 10**12
            shared = uuid.uuid4().hex
            # 40 requests at once, two of them with the same event id
            requests = [request(1, token=shared if n in (5, 30) else "") for n in range(40)]
            answers = await asyncio.gather(*(groups.accept(r, window) for r in requests))
            after = (await redis.info("commandstats"))["cmdstat_evalsha"]["calls"]
            # each call appended one chunk: its group's new rows (blob rows: the imports lane)
            assert await redis.llen(buffer_keys[2]) == after - before
            await redis.delete(*buffer_keys)
            return answers, after - before, window
        finally:
            await redis.aclose()

    answers, calls, _ = asyncio.run(scenario())
    assert [a[0] for a in answers] == [b"0" if n == 30 else b"1" for n in range(40)]
    # queued in one loop turn: at most two calls (the first group, then what queued while
    # it was in flight), not 40
    assert 1 <= calls <= 2


def test_private_connections_survive_killed_connections(redis_server) -> None:
    """The accept calls' own connections: reused while healthy, kept after an error answer,
    and replaced (the call sent once more) when Redis dropped them, as after a restart."""
    async def scenario() -> None:
        redis = Redis.from_url(redis_server.url)
        admin = Redis.from_url(redis_server.url)
        connections = PrivateConnections(redis)
        ping = hiredis.pack_command((b"PING",))
        try:
            assert await asyncio.gather(*(connections.call(ping) for _ in range(3))) == [
                b"PONG"] * 3
            assert len(connections._idle) == 3  # one per call that was in flight
            first = connections._idle[-1]
            assert await connections.call(ping) == b"PONG"
            assert connections._idle[-1] is first  # reused, not a new one per call
            with pytest.raises(ResponseError):
                await connections.call(hiredis.pack_command((b"NOSUCHCOMMAND",)))
            assert len(connections._idle) == 3  # an error answer leaves it usable
            # Redis drops these connections: the next call finds its connection dead, drops
            # the idle ones and succeeds on a fresh one
            ids = await asyncio.gather(*(connections.call(hiredis.pack_command(
                (b"CLIENT", b"ID"))) for _ in range(3)))
            assert len(set(ids)) == 3
            for client_id in ids:
                await admin.execute_command("CLIENT", "KILL", "ID", client_id)
            assert await connections.call(ping) == b"PONG"
            assert len(connections._idle) == 1
        finally:
            await connections.close()
            await redis.aclose()
            await admin.aclose()

    asyncio.run(scenario())

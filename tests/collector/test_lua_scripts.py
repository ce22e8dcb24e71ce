"""The collector's Redis scripts (``collector/lua/*.lua``), each against a real Redis.

``claim.lua`` and the accept script's blob and session handling have tests of their own in
test_landing.py; here: each script's header, sessions.lua against its Python twin
(``trackhouse.session_ids``), the accept script with hostile device ids, finish.lua and
recover.lua.
"""

from __future__ import annotations

import uuid
from datetime import date
from importlib import resources

import orjson
import pytest

from collector.buffer import (
    ACCEPT,
    FINISH,
    RECOVER,
    AcceptLimits,
    AcceptRequest,
    accept_call,
    lua_source,
)
from trackhouse.row_encoding import RowEncoder
from trackhouse.session_ids import live_session_start, session_id, session_value

SCRIPTS = ("accept", "claim", "finish", "recover")


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_states_its_contract(name: str) -> None:
    header = []
    for line in (resources.files("collector") / "lua" / f"{name}.lua").read_text().splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    text = "\n".join(header)
    assert text.startswith(f"-- {name}.lua: ")
    for part in ("KEYS", "ARGV", "Reply"):
        assert f"\n-- {part}" in text, part


DEVICES = ("0123456789abcdef0123456789abcdef", "sdk-device", 'quote"d', "back\\slash",
           "ünïcødé 端末", "x" * 64, "a:b:c")
STARTS = (0, 1, 1_767_225_600_000, 1_767_225_600_123, 253_402_300_799_999)


def test_sessions_lua_matches_its_python_twin(redis_client) -> None:
    """The same session id, value and liveness from Lua (inside Redis) as from Python."""
    script = redis_client.register_script(lua_source("sessions") + """
local start, seen = session_at(ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
return {session_id(ARGV[1], ARGV[2], tonumber(ARGV[3])),
        session_value(tonumber(ARGV[3]), tonumber(ARGV[3]) + 5),
        start and string.format('%d', start) or false}
""")
    for project in ("p", "project-ü"):
        for device in DEVICES:
            for start in STARTS:
                value = session_value(start, start + 1_000)
                for at, idle in ((start + 1_000, 0), (start + 31_000, 30_000),
                                 (start + 31_001, 30_000)):
                    lua_id, lua_value, lua_start = script(args=[
                        project, device, start, value, at, idle])
                    assert lua_id.decode() == session_id(project, device, start)
                    assert lua_value == session_value(start, start + 5)
                    python_start = live_session_start(value, at, idle)
                    assert (int(lua_start) if lua_start else None) == python_start
    assert live_session_start(None, 5, 5) is None


def test_session_id_is_a_version_5_uuid() -> None:
    found = uuid.UUID(session_id("p", "d", 1))
    assert found.version == 5 and found.variant == uuid.RFC_4122


def _accept(redis_client):
    """The accept script on buffer keys, a window and a project of its own."""
    prefix = f"test-lua-{uuid.uuid4().hex}"
    buffer_keys = tuple(f"{prefix}:{n}" for n in range(10))
    window = uuid.uuid4().int % 10**12 + 10**12
    script = redis_client.register_script(ACCEPT)
    limits = AcceptLimits(backlog_limit=10**9, session_idle_ms=1_800_000,
                          event_ids_ttl_s=60, request_window_ms=10_000)

    def call(encoder: RowEncoder) -> list:
        request = AcceptRequest(prefix, date(2026, 11, 27), (), *encoder.encoded())
        keys, args = accept_call([request], window, limits, buffer_keys)
        return script(keys=keys, args=args)

    return call, prefix, buffer_keys


def test_accept_writes_hostile_device_ids_as_valid_json(redis_client) -> None:
    """An SDK's own device id may hold quotes, backslashes and any Unicode: the live row the
    script completes stays valid JSON holding exactly that id, and its session is the one
    Python computes."""
    call, prefix, keys = _accept(redis_client)
    encoder = RowEncoder()
    for n, device in enumerate(DEVICES):
        row = orjson.dumps({"n": n, "text": "nul\0 newline\n"})
        encoder.add_live(f"token-{n}", True, device, device, 1_000 + n, row[:-1])
    (answer,) = call(encoder)
    assert answer[0] == b"1" * len(DEVICES)
    (chunk,) = redis_client.lrange(keys[0], 0, -1)
    rows = [orjson.loads(line) for line in chunk.split(b"\n")]
    assert [row["device_id"] for row in rows] == list(DEVICES)
    assert [row["text"] for row in rows] == ["nul\0 newline\n"] * len(DEVICES)
    assert [row["session_id"] for row in rows] == [
        session_id(prefix, device, 1_000 + n) for n, device in enumerate(DEVICES)]
    assert [a.decode() for a in answer[1::2]] == list(DEVICES)
    redis_client.delete(*keys)


def test_accept_answers_duplicates_and_refusals(redis_client) -> None:
    call, _, keys = _accept(redis_client)
    encoder = RowEncoder()
    encoder.add_complete(0, "same-id", True, b'{"n":1}')
    encoder.add_complete(0, "same-id", True, b'{"n":2}')
    (answer,) = call(encoder)
    assert answer == [b"10"]
    assert redis_client.lrange(keys[2], 0, -1) == [b'{"n":1}']
    redis_client.delete(*keys)


def test_finish_forgets_a_batch_once(redis_client) -> None:
    prefix = f"test-finish-{uuid.uuid4().hex}"
    pending, inflight, batch, lease, attempts = (f"{prefix}:{n}" for n in (
        "pending", "inflight", "batch", "lease", "attempts"))
    redis_client.zadd(pending, {"b1": 5})
    redis_client.set(inflight, 10)
    redis_client.rpush(batch, b"row")
    redis_client.set(lease, "me")
    redis_client.hset(attempts, "b1", 2)
    finish = redis_client.register_script(FINISH)
    for _ in range(2):  # a second finish (a replayed job) takes nothing off twice
        assert finish(keys=[pending, inflight, batch, lease, attempts], args=["b1", 4]) == 1
        assert int(redis_client.get(inflight)) == 6
        assert not redis_client.exists(pending, batch, lease, attempts)
    redis_client.delete(inflight)


def test_recover_hands_a_due_batch_to_one_flusher(redis_client) -> None:
    prefix = f"test-recover-{uuid.uuid4().hex}"
    pending, lease = f"{prefix}:pending", f"{prefix}:lease"
    recover = redis_client.register_script(RECOVER)
    redis_client.zadd(pending, {"due": 100, "later": 500})
    assert recover(keys=[pending, lease], args=["later", 200, 900]) == 0  # not due yet
    assert recover(keys=[pending, lease], args=["gone", 200, 900]) == 0  # not pending
    redis_client.set(lease, "a lander")
    assert recover(keys=[pending, lease], args=["due", 200, 900]) == 0  # leased: alive
    redis_client.delete(lease)
    assert recover(keys=[pending, lease], args=["due", 200, 900]) == 1
    assert redis_client.zscore(pending, "due") == 900
    assert recover(keys=[pending, lease], args=["due", 200, 900]) == 0  # taken once
    redis_client.delete(pending)



def test_the_accept_scripts_key_positions_match_the_buffer_layout() -> None:
    """accept.lua addresses the lanes by position (KEYS 1-3 buffers, 4-6 chunk-row lists,
    7-9 buffered-row counters, 10 inflight, 11-12 the dedup sets): a lane added to
    ``buffer_layout.LANES`` must fail here until the script has its place."""
    from collector.buffer import BUFFER_KEYS, LANES
    from trackhouse.buffer_layout import Keys

    assert list(LANES) == ["events", "profiles", "imports"]
    assert BUFFER_KEYS == (*map(Keys.buffer, LANES), *map(Keys.chunk_rows, LANES),
                           *map(Keys.buffered_rows, LANES), Keys.inflight)
    keys, _ = accept_call([], 7, AcceptLimits(1, 1, 1, 1))
    assert keys[10:] == [Keys.seen_ids(7), Keys.seen_ids(6)]

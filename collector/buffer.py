"""The Redis side of ingestion: live sessions, the accept-once buffer, batches, dead letters.

Every multi-step change is one Lua script, so it is atomic and costs one round trip:

- ``touch_sessions``: per event, read and update the device's (session start, last seen) and
  return the session start; a device id from yesterday's salt that is still live wins.
- ``accept``: per row, ``SET dedup-key NX EX ttl`` and only then ``RPUSH`` the row to its
  table's buffer; refuses everything when the backlog is past its bound.
- ``claim``: move up to N buffered rows into one batch (a single JSONEachRow string) with a
  fresh id, registered in the table's pending set; the rows leave the buffer only here, and the
  batch leaves Redis only after ClickHouse acknowledged it (``finish``).
"""

from __future__ import annotations

from dataclasses import dataclass

TABLES = ("events", "profiles")
PREFIX = "th:"


@dataclass(frozen=True)
class Keys:
    """Redis key names (one place, so the app, the worker and the tests agree)."""

    @staticmethod
    def buffer(table: str) -> str:
        return f"{PREFIX}buf:{table}"

    @staticmethod
    def pending(table: str) -> str:
        """Sorted set: batch id -> time (ms) after which it may be (re)enqueued."""
        return f"{PREFIX}pending:{table}"

    @staticmethod
    def batch(batch_id: str) -> str:
        return f"{PREFIX}batch:{batch_id}"

    @staticmethod
    def lease(batch_id: str) -> str:
        return f"{PREFIX}lease:{batch_id}"

    @staticmethod
    def attempts(table: str) -> str:
        return f"{PREFIX}attempts:{table}"

    @staticmethod
    def dead_letter(table: str) -> str:
        return f"{PREFIX}dead:{table}"

    inflight = f"{PREFIX}inflight_rows"

    @staticmethod
    def session(project_id: str, device_id: str) -> str:
        return f"{PREFIX}s:{project_id}:{device_id}"

    @staticmethod
    def dedup(kind: str, value: str) -> str:
        return f"{PREFIX}seen:{kind}:{value}"


# ARGV: idle_ms, then (key, previous-day key or '', event time ms) per event.
# Returns (1 if the previous-day key was used else 0, session start ms) per event.
TOUCH_SESSIONS = """
local idle = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  local key, prev, ts = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local used_prev = 0
  if prev ~= '' and redis.call('EXISTS', key) == 0 and redis.call('EXISTS', prev) == 1 then
    key = prev
    used_prev = 1
  end
  local value = redis.call('GET', key)
  local start, last = ts, ts
  if value then
    local sep = string.find(value, ':', 1, true)
    local s, l = tonumber(string.sub(value, 1, sep - 1)), tonumber(string.sub(value, sep + 1))
    if ts - l <= idle then
      start = math.min(s, ts)
      last = math.max(l, ts)
    end
  end
  redis.call('SET', key, string.format('%d:%d', start, last), 'PX', 2 * idle)
  out[#out + 1] = used_prev
  out[#out + 1] = start
end
return out
"""

# KEYS: events buffer, profiles buffer, inflight counter.
# ARGV: backlog limit, then (dedup key, ttl s, target 1|2, row) per row.
# Returns -1 (backlog full) or, per row, 1 (accepted) / 0 (a duplicate, dropped).
ACCEPT = """
local backlog = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])
  + tonumber(redis.call('GET', KEYS[3]) or '0')
if backlog >= tonumber(ARGV[1]) then
  return {-1}
end
local out = {}
for i = 2, #ARGV, 4 do
  if redis.call('SET', ARGV[i], '1', 'NX', 'EX', ARGV[i + 1]) then
    redis.call('RPUSH', KEYS[tonumber(ARGV[i + 2])], ARGV[i + 3])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS: buffer, pending set, inflight counter, batch key.
# ARGV: batch id, max rows, max in-flight batches, enqueue-not-before (ms).
# Returns the number of rows claimed (0: nothing to do or too many batches in flight).
CLAIM = """
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return 0
end
local n = math.min(redis.call('LLEN', KEYS[1]), tonumber(ARGV[2]))
if n == 0 then
  return 0
end
local rows = redis.call('LRANGE', KEYS[1], 0, n - 1)
redis.call('SET', KEYS[4], table.concat(rows, '\\n'))
redis.call('LTRIM', KEYS[1], n, -1)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('INCRBY', KEYS[3], n)
return n
"""

# KEYS: pending set, inflight counter, batch key, lease key, attempts hash.
# ARGV: batch id, rows landed.
FINISH = """
if redis.call('DEL', KEYS[3]) == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[2])
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[4])
redis.call('HDEL', KEYS[5], ARGV[1])
return 1
"""

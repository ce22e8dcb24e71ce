"""The Redis side of ingestion: live sessions, the accept-once buffer, batches, dead letters.

Every multi-step change is one Lua script, so it is atomic and costs one round trip:

- ``accept`` (one call per request): counts the request against its rate limits and refuses
  it when one is exceeded; refuses everything when the backlog is past its bound;
  per row, reads and updates the device's live session (start, last seen; a device id from
  yesterday's salt that is still live wins), then checks that its event id is new to the
  dedup window (or its request fingerprint new to the last 10 seconds); the new rows are
  appended to their table's buffer as ONE chunk (JSONEachRow lines), with its row count
  alongside: a 500-event import is one list element, not 500, and arrives as one blob (see
  ``ACCEPT``).
- ``claim``: move whole chunks, up to N rows, into one batch (a list of chunks: JSONEachRow
  lines) with a fresh id, registered in the table's pending set; the rows leave the buffer
  only here, and the batch leaves Redis only after ClickHouse acknowledged it (``finish``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

TABLES = ("events", "profiles")
PREFIX = "th:"
# a day's session hash is read as "yesterday" the whole next day
SESSION_DAYS_TTL_S = 3 * 86_400


@dataclass(frozen=True)
class Keys:
    """Redis key names (one place, so the app, the worker and the tests agree)."""

    @staticmethod
    def buffer(table: str) -> str:
        """List of chunks: the rows one request added to ``table``, joined by newlines."""
        return f"{PREFIX}buf:{table}"

    @staticmethod
    def chunk_rows(table: str) -> str:
        """List of the row count of each chunk of ``buffer(table)``, in the same order."""
        return f"{PREFIX}bufn:{table}"

    @staticmethod
    def buffered_rows(table: str) -> str:
        """Counter: rows in ``buffer(table)``."""
        return f"{PREFIX}bufrows:{table}"

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
    def sessions(project_id: str, day: date) -> str:
        """Hash: device id -> "session start ms:last seen ms", for the devices of one UTC day
        (a device id is salted per day; an SDK's own device id is kept under each day it is
        seen). Expires ``SESSION_DAYS_TTL_S`` after its last write."""
        return f"{PREFIX}s:{project_id}:{day.isoformat()}"

    @staticmethod
    def dedup(kind: str, value: str) -> str:
        """A request fingerprint's own key (``SET NX EX``, a 10-second window)."""
        return f"{PREFIX}seen:{kind}:{value}"

    @staticmethod
    def seen_ids(window: int) -> str:
        """Set of the event ids accepted in one dedup window (``collector_event_dedup_ttl_s``
        long); an id counts as seen while it is in this window's set or the previous one's."""
        return f"{PREFIX}seen:ids:{window}"


# One script per request: rate limits, the backlog bound, sessions, deduplication and the
# buffer append, so a request costs one Redis round trip.
# KEYS: events buffer, profiles buffer, inflight counter, events and profiles chunk-row
#   lists, events and profiles buffered-row counters, today's and yesterday's session hashes
#   (``Keys.sessions``), this dedup window's and the previous window's event-id sets
#   (``Keys.seen_ids``), then one counter key per rate limit.
# ARGV (fields joined by NUL: each argument costs the client more to encode than a field
#   costs Lua to split): first the request's: backlog limit, session idle ms, project id,
#   the event-id sets' ttl s, the request fingerprints' dedup ttl s, the session hashes' ttl
#   s, then per rate limit (one per extra key) its expiry s, allowed amount and cost. Then
#   the two blobs: the rows that need no live session (imports, profiles), already complete,
#   joined by newlines, one blob per table (events, profiles). Then the layout: one
#   character per row, in message order: 'e' a row of the events blob deduplicated by its
#   event id, 'E' by its request fingerprint; 'p' and 'P' the same for the profiles blob;
#   'L' a live event row deduplicated by its event id, 'R' by its request fingerprint. Then
#   every row's dedup token, in row order, NUL-joined in one argument: its event id, or its
#   fingerprint's key. Then one argument per live row, in row order: device id, previous-day
#   device id ('' if none) and event time ms, each NUL-terminated, then the row JSON (its
#   session is decided here). JSON text never holds a raw NUL or newline.
# Event ids are remembered in one set per window: two SMISMEMBER and one SADD per request
# instead of a SET NX EX per row (measured on 500-row imports: 2.6 -> 1.3 us of Redis CPU
# per row, 143 -> 101 bytes of memory per remembered id). An id is remembered for one to two
# windows. A fingerprint (an event with neither id nor time) keeps its own 10-second key.
# Why blobs: a 500-row import then needs no per-row string work in Lua (fields
# are cut with plain finds of NUL: Lua's pattern character classes cost microseconds), and
# a handful of arguments for the client to encode (redis-py spends about a microsecond of
# Python per argument). Its rows cost about 8 us of Redis CPU each as
# per-row JSON arguments, 2.3 us as a blob (500-row imports against a Redis with AOF). Only
# when some rows are duplicates is the blob cut around them (a plain find of each newline).
# Rate limits are the ``limits`` library's fixed windows, kept exactly as its Redis storage
# keeps them (same keys; INCRBY, and EXPIRE when the window's first hit created the counter),
# so ``limits``' own window statistics stay right; every limit is counted before any is
# checked, as ``RateLimits.check`` does.
# A live row's device id (today's, or yesterday's when that one has the live session) and
# session id are decided here and appended to its JSON. Sessions live in one hash per
# project and UTC day, so a request reads every device's session in one HMGET (two when
# some are looked up under yesterday's id) and writes them back in one HSET per day: per
# live row, Redis then runs one command (the dedup SET NX), not three or four. Measured with
# callgrind (instruction counts, repeatable): 135 k -> 120 k Redis instructions per live row
# of a 500-row batch; the rest is Lua's own work on the row and the dedup key. A hash keeps
# every device seen that day (about 100 bytes each) until it expires, two days later; a
# session's liveness is its last-seen time, so an entry left idle simply starts a new one.
# A session keeps the start it was first seen with (an earlier-stamped event arriving later
# does not move it, so concurrent requests of one visit get one id). The session id is a
# UUID laid out from sha1("project:device:session start ms"); ``identity.session_id``
# computes the same.
# Returns {-2, i} when rate limit i (1-based) is exceeded (nothing stored), {-1} when the
# backlog is full, else {flags, then device id and session id of each live row}: flags has
# one character per row, '1' accepted or '0' duplicate (a short answer: imports of thousands
# of rows need nothing else back).
ACCEPT = """
-- text cut at every sep (plain finds: Lua's pattern character classes cost microseconds)
local function split(text, sep)
  local parts, at = {}, 1
  while true do
    local stop = string.find(text, sep, at, true)
    if not stop then
      parts[#parts + 1] = string.sub(text, at)
      return parts
    end
    parts[#parts + 1] = string.sub(text, at, stop - 1)
    at = stop + 1
  end
end
local head = split(ARGV[1], '\\0')
local limits = #KEYS - 11
local counted = {}
for j = 1, limits do
  local cost = tonumber(head[6 + 3 * j])
  counted[j] = redis.call('INCRBY', KEYS[11 + j], cost)
  if counted[j] == cost then
    redis.call('EXPIRE', KEYS[11 + j], head[4 + 3 * j])
  end
end
for j = 1, limits do
  if counted[j] > tonumber(head[5 + 3 * j]) then
    return {-2, j}
  end
end
local backlog = tonumber(redis.call('GET', KEYS[6]) or '0')
  + tonumber(redis.call('GET', KEYS[7]) or '0') + tonumber(redis.call('GET', KEYS[3]) or '0')
if backlog >= tonumber(head[1]) then
  return {-1}
end
local idle, project = tonumber(head[2]), head[3]
local blobs = {ARGV[2], ARGV[3]}
-- per table: kept blob rows, and per blob row whether it is kept (needed only to cut the
-- blob when something was dropped)
local kept, keep = {0, 0}, {{}, {}}
-- layout character -> {table (1 events, 2 profiles, 0 live), deduplicated by event id}
local kinds = {e = {1, true}, E = {1, false}, p = {2, true}, P = {2, false}, L = {0, true},
  R = {0, false}}
local flags, out, live = {}, {''}, {}
local layout, next_live = ARGV[4], 1
local tokens = split(ARGV[5], '\\0')  -- every row's dedup token
-- live rows: device, previous device, event time, row (JSON holds no raw NUL)
local lives, devices, seen = {}, {}, {}
for k = 6, #ARGV do
  local fields = split(ARGV[k], '\\0')
  lives[#lives + 1] = fields
  if not seen[fields[1]] then
    seen[fields[1]] = true
    devices[#devices + 1] = fields[1]
  end
end
-- redis.call(command, key, values...) in slices: Lua's unpack() stops at a few thousand
local function call_in_slices(command, key, values)
  local results = {}
  for from = 1, #values, 2000 do
    local answer = redis.call(command, key, unpack(values, from, math.min(from + 1999, #values)))
    if type(answer) == 'table' then
      for _, item in ipairs(answer) do
        results[#results + 1] = item
      end
    end
  end
  return results
end
-- start and last seen of the session a stored "start:last" value holds, if live at ts
local function session_at(value, ts)
  if not value then
    return nil
  end
  local sep = string.find(value, ':', 1, true)
  local start, seen = tonumber(string.sub(value, 1, sep - 1)), tonumber(string.sub(value, sep + 1))
  if ts - seen <= idle then
    return start, seen
  end
  return nil
end
-- the event ids already seen, this window's set or the previous one's
local known, ids, asked_ids = {}, {}, {}
for r = 1, #layout do
  local id = tokens[r]
  if kinds[string.sub(layout, r, r)][2] and not asked_ids[id] then
    asked_ids[id] = true
    ids[#ids + 1] = id
  end
end
if #ids > 0 then
  for w = 10, 11 do
    local found = call_in_slices('SMISMEMBER', KEYS[w], ids)
    for i = 1, #ids do
      if found[i] == 1 then
        known[ids[i]] = true
      end
    end
  end
end
local new_ids = {}
-- accepted once: a new event id (remembered from here on) or a fingerprint's first SET NX
local function first_time(r, by_id)
  local token = tokens[r]
  if not by_id then
    return redis.call('SET', token, '1', 'NX', 'EX', head[5]) and true or false
  end
  if known[token] then
    return false
  end
  known[token] = true
  new_ids[#new_ids + 1] = token
  return true
end
-- every device's session, today's hash first, then yesterday's for the misses: the state
-- per day, device id -> "start:last" (false: none), updated row by row below
local state, dirty = {{}, {}}, {{}, {}}
if #devices > 0 then
  local found = call_in_slices('HMGET', KEYS[8], devices)
  local previous, asked = {}, {}
  for d = 1, #devices do
    state[1][devices[d]] = found[d]
  end
  for _, fields in ipairs(lives) do
    local prev = fields[2]
    if prev ~= '' and not state[1][fields[1]] and not asked[prev] then
      asked[prev] = true
      previous[#previous + 1] = prev
    end
  end
  if #previous > 0 then
    found = call_in_slices('HMGET', KEYS[9], previous)
    for d = 1, #previous do
      state[2][previous[d]] = found[d]
    end
  end
end
for r = 1, #layout do
  local kind = kinds[string.sub(layout, r, r)]
  local target = kind[1]
  if target > 0 then
    local new = first_time(r, kind[2])
    local rows = keep[target]
    rows[#rows + 1] = new
    if new then
      kept[target] = kept[target] + 1
      flags[r] = '1'
    else
      flags[r] = '0'
    end
  else
    local fields = lives[next_live]
    next_live = next_live + 1
    local device, prev, row = fields[1], fields[2], fields[4]
    local ts = tonumber(fields[3])
    -- today's id, or yesterday's while that one's session is still live
    local day, start, seen = 1, session_at(state[1][device], ts)
    if not start and prev ~= '' then
      local prev_start, prev_seen = session_at(state[2][prev], ts)
      if prev_start then
        device, day, start, seen = prev, 2, prev_start, prev_seen
      end
    end
    local first, last = ts, ts
    if start then
      first, last = start, math.max(seen, ts)
    end
    state[day][device] = string.format('%d:%d', first, last)
    dirty[day][device] = true
    local h = redis.sha1hex(project .. ':' .. device .. ':' .. string.format('%d', first))
    local variant = string.format('%x', 8 + (tonumber(string.sub(h, 17, 17), 16) % 4))
    local session = string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5'
      .. string.sub(h, 14, 16) .. '-' .. variant .. string.sub(h, 18, 20) .. '-'
      .. string.sub(h, 21, 32)
    if first_time(r, kind[2]) then
      live[#live + 1] = string.sub(row, 1, -2) .. ',"device_id":"' .. device
        .. '","session_id":"' .. session .. '"}'
      flags[r] = '1'
    else
      flags[r] = '0'
    end
    out[#out + 1] = device
    out[#out + 1] = session
  end
end
out[1] = table.concat(flags)
if #new_ids > 0 then
  call_in_slices('SADD', KEYS[10], new_ids)
  redis.call('EXPIRE', KEYS[10], head[4])
end
-- the sessions back, one HSET per day's hash
for day = 1, 2 do
  local pairs_out = {}
  for device in pairs(dirty[day]) do
    pairs_out[#pairs_out + 1] = device
    pairs_out[#pairs_out + 1] = state[day][device]
  end
  if #pairs_out > 0 then
    call_in_slices('HSET', KEYS[7 + day], pairs_out)
    redis.call('EXPIRE', KEYS[7 + day], head[6])
  end
end
-- one chunk per table: its blob (cut around duplicates, if any), then the live rows
for target = 1, 2 do
  local parts, rows = {}, kept[target]
  if kept[target] > 0 then
    if kept[target] == #keep[target] then
      parts[1] = blobs[target]
    else
      local cut = {}
      for i, row in ipairs(split(blobs[target], '\\n')) do
        if keep[target][i] then
          cut[#cut + 1] = row
        end
      end
      parts[1] = table.concat(cut, '\\n')
    end
  end
  if target == 1 and #live > 0 then
    parts[#parts + 1] = table.concat(live, '\\n')
    rows = rows + #live
  end
  if rows > 0 then
    redis.call('RPUSH', KEYS[target], table.concat(parts, '\\n'))
    redis.call('RPUSH', KEYS[3 + target], rows)
    redis.call('INCRBY', KEYS[5 + target], rows)
  end
end
return out
"""

# KEYS: buffer, pending set, inflight counter, batch key, chunk-row list, buffered-row counter.
# ARGV: batch id, max rows, max in-flight batches, enqueue-not-before (ms).
# Takes whole chunks while they fit in max rows (at least one) and moves them, in order, to
# the batch key (a list of chunks). Returns {rows claimed, rows still buffered}; {0, n} when
# nothing was claimed (empty, or too many batches in flight).
CLAIM = """
local left = tonumber(redis.call('GET', KEYS[6]) or '0')
if left == 0 or redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return {0, left}
end
local limit = tonumber(ARGV[2])
local counts = redis.call('LRANGE', KEYS[5], 0, limit - 1)
local chunks, rows = 0, 0
for i = 1, #counts do
  local n = tonumber(counts[i])
  if i > 1 and rows + n > limit then
    break
  end
  chunks, rows = i, rows + n
end
if chunks == 0 then
  return {0, left}
end
-- the chunks move (LMOVE): no copy of the rows into a new value, so the append-only file
-- logs a short command, not the batch's megabytes a second time
for i = 1, chunks do
  redis.call('LMOVE', KEYS[1], KEYS[4], 'LEFT', 'RIGHT')
end
redis.call('LTRIM', KEYS[5], chunks, -1)
redis.call('DECRBY', KEYS[6], rows)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('INCRBY', KEYS[3], rows)
return {rows, left - rows}
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

"""The Redis side of ingestion: live sessions, the accept-once buffer, batches, dead letters.

Every multi-step change is one Lua script, so it is atomic and costs one round trip:

- ``accept`` (one call per group of concurrent requests, ``pipeline.AcceptGroups``): per
  request, in order, counts it against its rate limits and refuses it when one is exceeded,
  refuses it when the backlog is past its bound; per row, reads and updates the device's
  live session (start, last seen; a device id from yesterday's salt that is still live
  wins), then checks that its event id is new to the dedup window (or its request
  fingerprint new to the duplicate window, ``collector_duplicate_window_ms``); the group's
  new rows are appended to their lane's buffer (``LANES``) as ONE chunk (JSONEachRow
  lines), with its row count alongside: a 500-event import is one list element, not 500,
  and arrives as one blob (see ``ACCEPT``).
- ``claim``: move whole chunks, up to N rows, into one batch (a list of chunks: JSONEachRow
  lines) with a fresh id, registered in the lane's pending set; the rows leave the buffer
  only here, and the batch leaves Redis only after ClickHouse acknowledged it (``finish``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from trackhouse.buffer_layout import BACKLOG_KEYS, LANES, PREFIX, Keys

__all__ = ["ACCEPT", "BACKLOG_KEYS", "BUFFER_KEYS", "CLAIM", "FINISH", "LANES", "PREFIX",
           "RECOVER", "Keys", "AcceptLimits", "AcceptRequest", "accept_call"]

# a day's session hash is read as "yesterday" the whole next day
SESSION_DAYS_TTL_S = 3 * 86_400


# One script call for a group of requests: the requests of one loop turn of a collector
# process (``pipeline.AcceptGroups``), or one request alone. Per request: rate limits, the
# backlog bound, sessions, deduplication; then the group's new rows are appended to each
# lane's buffer as one chunk. The requests are handled in order, each exactly as if it had
# been sent alone (atomic; an id seen by an earlier request of the group is a duplicate).
# Why groups: a single-event ``/track`` cost about 45 us of Redis CPU when it was a script
# call of its own, against 6 us per row of a 500-row import: fifteen commands (rate-limit
# counters, backlog counters, dedup sets, session hash, buffer lists), each propagated to
# the append-only file, and the script call itself, all for one row. A group shares them.
# Call it through ``accept_call``, which lays out:
# KEYS: the buffers of the lanes (events, profiles, imports: ``LANES``' order), their
#   chunk-row lists, their buffered-row counters, the inflight counter, this dedup window's
#   and the previous window's event-id sets (``Keys.seen_ids``), then the group's session hashes
#   (``Keys.sessions``) and rate-limit counters, each once; requests name them by position.
# ARGV (fields joined by NUL: each argument costs the client more to encode than a field
#   costs Lua to split): ARGV[1] the group's head: backlog limit, session idle ms, the
#   event-id sets' ttl s, the request fingerprints' duplicate window ms, the session
#   hashes' ttl s, the number of requests, then per rate-limit counter: its KEYS position,
#   expiry s and allowed amount. Then per request: its head (project id, KEYS positions of
#   its today's and yesterday's session hashes, number of live rows, then the KEYS positions
#   of the counters it is charged one hit on); the two blobs: the rows that need no live session
#   (imports, profiles), already complete, joined by newlines, one blob per table (events,
#   profiles; the events blob holds imported rows only, and goes to the imports lane); the
#   layout: one character per row, in message order: 'e' a row of the events
#   blob deduplicated by its event id, 'E' by its request fingerprint; 'p' and 'P' the same
#   for the profiles blob; 'L' a live event row deduplicated by its event id, 'R' by its
#   request fingerprint; every row's dedup token, in row order, NUL-joined in one argument:
#   its event id, or its fingerprint's key; then two arguments per live row, in row order:
#   its device id, previous-day device id ('' if none) and event time ms, NUL-joined; and
#   its JSON without the closing brace (device and session ids are appended here). JSON
#   text never holds a raw NUL or newline.
# Event ids are remembered in one set per window: SMISMEMBER and SADD per group instead of a
# SET NX EX per row (measured on 500-row imports: 2.6 -> 1.3 us of Redis CPU per row,
# 143 -> 101 bytes of memory per remembered id). An id is remembered for one to two windows.
# A fingerprint (an event with neither id nor time) keeps its own key for the duplicate
# window (milliseconds: real repeats, two clicks a second apart, are two events).
# Why blobs: a 500-row import then needs no per-row string work in Lua (fields are cut with
# plain finds of NUL: Lua's pattern character classes cost microseconds), and a handful of
# arguments for the client to encode (redis-py spends about a microsecond of Python per
# argument). Its rows cost about 8 us of Redis CPU each as per-row JSON arguments, 2.3 us as
# a blob. Only when some rows are duplicates is the blob cut around them.
# Rate limits are the ``limits`` library's fixed windows, kept exactly as its Redis storage
# keeps them (same keys; INCRBY, and EXPIRE when the window's first hit created the
# counter), so ``limits``' own window statistics stay right. A counter takes the group's
# hits on it in one INCRBY; request by request, a hit is over the limit when its place in
# the window is past the allowed amount, exactly as one INCRBY per request would have
# found. Every limit of a request is counted before any is checked, as
# ``RateLimits.check`` does; a refused request stores nothing.
# A live row's device id (today's, or yesterday's when that one has the live session) and
# session id are decided here and appended to its JSON. Sessions live in one hash per
# project and UTC day, read with one HMGET per hash (a second for yesterday's ids) and
# written back with one HSET per hash. A hash keeps every device seen that day (about 100
# bytes each) until it expires, two days later; a session's liveness is its last-seen time,
# so an entry left idle simply starts a new one. A session keeps the start it was first
# seen with (an earlier-stamped event arriving later does not move it, so concurrent
# requests of one visit get one id). The session id is a UUID laid out from
# sha1("project:device:session start ms"); ``identity.session_id`` computes the same.
# Returns one answer per request: {-2, i} when its rate limit i (1-based, in its head's
# order) is exceeded, {-1} when the backlog is full (nothing stored either way), else
# {flags, then device id and session id of each live row}: flags has one character per
# row, '1' accepted or '0' duplicate (a short answer: imports of thousands of rows need
# nothing else back).
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
local head = split(ARGV[1], '\\0')
local backlog_limit, idle = tonumber(head[1]), tonumber(head[2])
-- the requests, and the group's hits on each rate-limit counter
local requests, hits, at = {}, {}, 2
for i = 1, tonumber(head[6]) do
  local fields = split(ARGV[at], '\\0')
  local request = {project = fields[1], today = tonumber(fields[2]),
    yesterday = tonumber(fields[3]), blobs = {ARGV[at + 1], ARGV[at + 2]},
    layout = ARGV[at + 3], tokens = ARGV[at + 4], first_live = at + 5,
    live_count = tonumber(fields[4]), limits = {}}
  for j = 5, #fields do
    local counter = tonumber(fields[j])
    request.limits[#request.limits + 1] = counter
    hits[counter] = (hits[counter] or 0) + 1
  end
  requests[i] = request
  at = at + 5 + 2 * request.live_count
end
-- count every hit first; then each request's hits take the next places in the window
local place, allowed = {}, {}
for j = 7, #head, 3 do
  local counter, n = tonumber(head[j]), hits[tonumber(head[j])]
  local value = redis.call('INCRBY', KEYS[counter], n)
  if value == n then
    redis.call('EXPIRE', KEYS[counter], head[j + 1])
  end
  place[counter], allowed[counter] = value - n, tonumber(head[j + 2])
end
local backlog = 0
for k = 7, 10 do  -- the lanes' buffered rows and the rows in flight
  backlog = backlog + tonumber(redis.call('GET', KEYS[k]) or '0')
end
local answers, admitted = {}, {}
for i, request in ipairs(requests) do
  local refused = nil
  for j, counter in ipairs(request.limits) do
    place[counter] = place[counter] + 1
    if not refused and place[counter] > allowed[counter] then
      refused = j
    end
  end
  if refused then
    answers[i] = {-2, refused}
  else
    admitted[#admitted + 1] = request
  end
end
-- layout character -> {blob (1 events, 2 profiles, 0 none: live), deduplicated by event id}
local kinds = {e = {1, true}, E = {1, false}, p = {2, true}, P = {2, false}, L = {0, true},
  R = {0, false}}
-- the admitted requests' tokens and live rows (device, previous device, event time, row)
local known, ids, asked_ids = {}, {}, {}
local state, loaded, dirty = {}, {}, {}  -- per session hash: device -> "start:last" or false
local wanted = {}  -- per session hash: device ids to read
local function open(hash)
  if not state[hash] then
    state[hash], loaded[hash], dirty[hash], wanted[hash] = {}, {}, {}, {}
  end
end
local function want(hash, device)
  if not loaded[hash][device] then
    loaded[hash][device] = true
    wanted[hash][#wanted[hash] + 1] = device
  end
end
-- read the devices wanted from each hash (one HMGET per hash)
local function read_wanted()
  for hash, devices in pairs(wanted) do
    if #devices > 0 then
      local found = call_in_slices('HMGET', KEYS[hash], devices)
      for d = 1, #devices do
        state[hash][devices[d]] = found[d]
      end
      wanted[hash] = {}
    end
  end
end
for _, request in ipairs(admitted) do
  request.tokens = split(request.tokens, '\\0')
  local layout = request.layout
  for r = 1, #layout do
    local id = request.tokens[r]
    if kinds[string.sub(layout, r, r)][2] and not asked_ids[id] then
      asked_ids[id] = true
      ids[#ids + 1] = id
    end
  end
  request.lives = {}
  if request.live_count > 0 then
    open(request.today)
    open(request.yesterday)
    for k = request.first_live, request.first_live + 2 * request.live_count - 1, 2 do
      local fields = split(ARGV[k], '\\0')
      fields[4] = ARGV[k + 1]  -- the row (no copy: Lua strings are shared)
      request.lives[#request.lives + 1] = fields
      want(request.today, fields[1])
    end
  end
end
read_wanted()
-- yesterday's ids, for the devices with no session under today's
for _, request in ipairs(admitted) do
  for _, fields in ipairs(request.lives) do
    if fields[2] ~= '' and not state[request.today][fields[1]] then
      want(request.yesterday, fields[2])
    end
  end
end
read_wanted()
-- the event ids already seen, this window's set or the previous one's
if #ids > 0 then
  for w = 11, 12 do
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
local function first_time(token, by_id)
  if not by_id then
    return redis.call('SET', token, '1', 'NX', 'PX', head[4]) and true or false
  end
  if known[token] then
    return false
  end
  known[token] = true
  new_ids[#new_ids + 1] = token
  return true
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
-- the group's new rows per lane (1 events: live rows, 2 profiles, 3 imports: the events
-- blob, which holds only imported rows), as pieces joined once at the end: each copy of a row
-- costs Redis about a microsecond (Lua allocates it, then collects it)
local pieces, count, rows = {{}, {}, {}}, {0, 0, 0}, {0, 0, 0}
local blob_lane = {3, 2}
local function add(target, piece)
  count[target] = count[target] + 1
  pieces[target][count[target]] = piece
end
local function add_rows(target, text)  -- text: rows joined by newlines
  if count[target] > 0 then
    add(target, '\\n')
  end
  add(target, text)
end
for i, request in ipairs(requests) do
  if not answers[i] and backlog >= backlog_limit then
    answers[i] = {-1}
  elseif not answers[i] then
    local flags, out = {}, {''}
    local keep, kept = {{}, {}}, {0, 0}
    local layout, next_live = request.layout, 1
    for r = 1, #layout do
      local kind = kinds[string.sub(layout, r, r)]
      local target = kind[1]
      if target > 0 then
        local new = first_time(request.tokens[r], kind[2])
        keep[target][#keep[target] + 1] = new
        if new then
          kept[target] = kept[target] + 1
          flags[r] = '1'
        else
          flags[r] = '0'
        end
      else
        local fields = request.lives[next_live]
        next_live = next_live + 1
        local device, prev, row = fields[1], fields[2], fields[4]
        local ts = tonumber(fields[3])
        -- today's id, or yesterday's while that one's session is still live
        local hash, start, seen = request.today, session_at(state[request.today][device], ts)
        if not start and prev ~= '' then
          local prev_start, prev_seen = session_at(state[request.yesterday][prev], ts)
          if prev_start then
            device, hash, start, seen = prev, request.yesterday, prev_start, prev_seen
          end
        end
        local first, last = ts, ts
        if start then
          first, last = start, math.max(seen, ts)
        end
        state[hash][device] = string.format('%d:%d', first, last)
        dirty[hash][device] = true
        local h = redis.sha1hex(request.project .. ':' .. device .. ':'
          .. string.format('%d', first))
        local variant = string.format('%x', 8 + (tonumber(string.sub(h, 17, 17), 16) % 4))
        local session = string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5'
          .. string.sub(h, 14, 16) .. '-' .. variant .. string.sub(h, 18, 20) .. '-'
          .. string.sub(h, 21, 32)
        if first_time(request.tokens[r], kind[2]) then
          -- the row's JSON comes without its closing brace
          add_rows(1, row)
          add(1, ',"device_id":"' .. device .. '","session_id":"' .. session .. '"}')
          rows[1], backlog = rows[1] + 1, backlog + 1
          flags[r] = '1'
        else
          flags[r] = '0'
        end
        out[#out + 1] = device
        out[#out + 1] = session
      end
    end
    out[1] = table.concat(flags)
    answers[i] = out
    for target = 1, 2 do
      if kept[target] == #keep[target] then
        if kept[target] > 0 then
          add_rows(blob_lane[target], request.blobs[target])
        end
      elseif kept[target] > 0 then
        local cut = {}
        for n, row in ipairs(split(request.blobs[target], '\\n')) do
          if keep[target][n] then
            cut[#cut + 1] = row
          end
        end
        add_rows(blob_lane[target], table.concat(cut, '\\n'))
      end
      rows[blob_lane[target]] = rows[blob_lane[target]] + kept[target]
      backlog = backlog + kept[target]
    end
  end
end
if #new_ids > 0 then
  call_in_slices('SADD', KEYS[11], new_ids)
  redis.call('EXPIRE', KEYS[11], head[3])
end
-- the sessions back, one HSET per hash
for hash, devices in pairs(dirty) do
  local pairs_out = {}
  for device in pairs(devices) do
    pairs_out[#pairs_out + 1] = device
    pairs_out[#pairs_out + 1] = state[hash][device]
  end
  if #pairs_out > 0 then
    call_in_slices('HSET', KEYS[hash], pairs_out)
    redis.call('EXPIRE', KEYS[hash], head[5])
  end
end
-- one chunk per lane for the whole group
for lane = 1, 3 do
  if rows[lane] > 0 then
    redis.call('RPUSH', KEYS[lane], table.concat(pieces[lane]))
    redis.call('RPUSH', KEYS[3 + lane], rows[lane])
    redis.call('INCRBY', KEYS[6 + lane], rows[lane])
  end
end
return answers
"""


@dataclass(slots=True)
class AcceptRequest:
    """One request's share of an accept call (see ``ACCEPT`` for the fields' meaning)."""

    project: str
    day: date  # the UTC day of its salts: its sessions are kept under it and the day before
    # (counter key, expiry s, allowed amount) of each rate limit it is charged one hit on
    limits: tuple[tuple[str, int, int], ...]
    events_blob: bytes
    profiles_blob: bytes
    layout: bytes
    tokens: bytes
    # per live row: (device id, previous-day device id and event time ms NUL-joined; its JSON
    # without the closing brace)
    live_rows: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class AcceptLimits:
    """The accept script's settings, the same for every request of a process."""

    backlog_limit: int
    session_idle_ms: int
    event_ids_ttl_s: int
    request_window_ms: int  # a request fingerprint's duplicate window
    sessions_ttl_s: int = SESSION_DAYS_TTL_S


# the accept script sums KEYS[7..10], the backlog's counters, against the backlog bound
BUFFER_KEYS = (*map(Keys.buffer, LANES), *map(Keys.chunk_rows, LANES), *BACKLOG_KEYS)


def live_session_start(value: bytes | None, at_ms: int, idle_ms: int) -> int | None:
    """The start (ms) of the session a ``Keys.sessions`` value ("start ms:last seen ms")
    holds if it is still live at ``at_ms``, as ``ACCEPT`` decides it; None otherwise."""
    if not value:
        return None
    start, _, seen = value.partition(b":")
    return int(start) if at_ms - int(seen) <= idle_ms else None


@lru_cache(maxsize=1_024)
def session_keys(project: str, day: date) -> tuple[str, str]:
    """The session hashes of a request of ``day``: that day's and the day before's."""
    return Keys.sessions(project, day), Keys.sessions(project, day - timedelta(days=1))


def accept_call(requests: list[AcceptRequest], window: int, limits: AcceptLimits,
                buffer_keys: tuple[str, ...] = BUFFER_KEYS) -> tuple[list[str], list[bytes]]:
    """KEYS and ARGV of one ``ACCEPT`` call for ``requests`` (in order), with the event ids
    remembered in dedup window ``window``'s set."""
    keys = [*buffer_keys, Keys.seen_ids(window), Keys.seen_ids(window - 1)]
    positions: dict[str, int] = {}

    def position(key: str) -> int:
        found = positions.get(key)
        if found is None:
            keys.append(key)
            found = positions[key] = len(keys)
        return found

    head = [limits.backlog_limit, limits.session_idle_ms, limits.event_ids_ttl_s,
            limits.request_window_ms, limits.sessions_ttl_s, len(requests)]
    counters: dict[str, tuple[int, int]] = {}
    args: list[bytes] = [b""]
    for request in requests:
        today_key, yesterday_key = session_keys(request.project, request.day)
        today, yesterday = position(today_key), position(yesterday_key)
        fields = [request.project, str(today), str(yesterday), str(len(request.live_rows))]
        for key, expiry, amount in request.limits:
            counters[key] = (expiry, amount)
            fields.append(str(position(key)))
        args += ["\0".join(fields).encode(), request.events_blob, request.profiles_blob,
                 request.layout, request.tokens]
        for live_fields, row in request.live_rows:
            args += (live_fields, row)
    for key, (expiry, amount) in counters.items():
        head += [positions[key], expiry, amount]
    args[0] = "\0".join(map(str, head)).encode()
    return keys, args


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

# KEYS: pending set, lease key. ARGV: batch id, now (ms), next due time (ms).
# A batch due again (a retry whose backoff passed, or a dead lander's: its lease expired) is
# taken for re-enqueueing by one flusher only: every worker's flusher looks once a second, and
# each used to enqueue its own job for the same batch. Returns 1 to the one that took it.
RECOVER = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""

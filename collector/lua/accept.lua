-- accept.lua: one call for a group of requests (ADR 0022): per request, in order, its rate
-- limits, the backlog bound, its rows' live sessions and deduplication; then the group's new
-- rows are appended to each lane's buffer as ONE chunk. Atomic: each request is handled
-- exactly as if it had been sent alone (an id seen by an earlier request is a duplicate).
-- Loaded after sessions.lua (session_at, session_value, session_id). Called through
-- ``collector.buffer.accept_call``; the row encoding is trackhouse/row_encoding.py's.
--
-- KEYS: 1-3 the lanes' buffers (events, profiles, imports: ``LANES``' order), 4-6 their
--   chunk-row lists, 7-9 their buffered-row counters, 10 the inflight counter, 11 this dedup
--   window's and 12 the previous window's event-id sets (``Keys.seen_ids``), then the group's
--   session hashes (``Keys.sessions``) and rate-limit counters, each once; requests name them
--   by position.
-- ARGV (fields NUL-joined):
--   ARGV[1] the group's head: backlog limit, session idle ms, event-id sets' ttl s, request
--     fingerprints' duplicate window ms, session hashes' ttl s, number of requests, then per
--     rate-limit counter: its KEYS position, expiry s, allowed amount.
--   Then per request, five arguments and two per live row:
--     head: project id, KEYS positions of its today's and yesterday's session hashes, number
--       of live rows, then the KEYS positions of the counters it is charged one hit on;
--     events blob, profiles blob: the complete rows needing no live session (imports,
--       profiles), newline-joined; the events blob (imported rows only) goes to the imports
--       lane;
--     layout: one character per row, in message order (``row_encoding.LAYOUT``): 'e'/'E' a
--       row of the events blob, 'p'/'P' of the profiles blob, 'L'/'R' a live event row;
--       lower case / 'L' deduplicated by event id, upper case / 'R' by request fingerprint;
--     tokens: every row's dedup token in row order, NUL-joined: its event id, or its
--       fingerprint's key (SET NX PX for the duplicate window);
--     per live row: its device id, previous-day device id ('' if none) and event time ms,
--       NUL-joined; then its JSON without the closing brace (device_id and session_id are
--       appended here).
-- Reply: one answer per request: {-2, i} when its rate limit i (1-based, in its head's
--   order) is exceeded, {-1} when the backlog is full (nothing stored either way), else
--   {flags, then device id and session id of each live row}; flags: one character per row,
--   '1' accepted, '0' duplicate.
-- Rate limits are the ``limits`` library's fixed windows, kept as its Redis storage keeps
-- them (same keys; INCRBY, EXPIRE when the window's first hit created the counter); every
-- limit of a request is counted before any is checked, as ``RateLimits.check`` does.
-- A live row's session: today's device id, or yesterday's while that one's session is
-- live; a session keeps the start it was first seen with, so concurrent requests of one
-- visit get one id.

-- a device id as JSON text (an SDK's own id may hold quotes or backslashes)
local function quoted(text)
  if string.find(text, '"', 1, true) or string.find(text, '\\', 1, true) then
    return cjson.encode(text)
  end
  return '"' .. text .. '"'
end
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
local head = split(ARGV[1], '\0')
local backlog_limit, idle = tonumber(head[1]), tonumber(head[2])
-- the requests, and the group's hits on each rate-limit counter
local requests, hits, at = {}, {}, 2
for i = 1, tonumber(head[6]) do
  local fields = split(ARGV[at], '\0')
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
  request.tokens = split(request.tokens, '\0')
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
      local fields = split(ARGV[k], '\0')
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
    add(target, '\n')
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
        local hash, start, seen = request.today, session_at(state[request.today][device], ts, idle)
        if not start and prev ~= '' then
          local prev_start, prev_seen = session_at(state[request.yesterday][prev], ts, idle)
          if prev_start then
            device, hash, start, seen = prev, request.yesterday, prev_start, prev_seen
          end
        end
        local first, last = ts, ts
        if start then
          first, last = start, math.max(seen, ts)
        end
        state[hash][device] = session_value(first, last)
        dirty[hash][device] = true
        local session = session_id(request.project, device, first)
        if first_time(request.tokens[r], kind[2]) then
          -- the row's JSON comes without its closing brace
          add_rows(1, row)
          add(1, ',"device_id":' .. quoted(device) .. ',"session_id":"' .. session .. '"}')
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
        for n, row in ipairs(split(request.blobs[target], '\n')) do
          if keep[target][n] then
            cut[#cut + 1] = row
          end
        end
        add_rows(blob_lane[target], table.concat(cut, '\n'))
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

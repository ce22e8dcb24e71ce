-- claim.lua: move whole chunks of a lane's buffer, up to max rows (at least one chunk), in
-- order, into a new batch (a list of chunks) registered in the lane's pending set. Rows leave
-- the buffer only here; the batch leaves Redis only once ClickHouse acknowledged it
-- (finish.lua).
-- KEYS: 1 buffer, 2 pending set, 3 inflight counter, 4 batch key, 5 chunk-row list,
--   6 buffered-row counter.
-- ARGV: 1 batch id, 2 max rows, 3 max in-flight batches, 4 enqueue-not-before (ms).
-- Reply: {rows claimed, rows still buffered}; {0, n} when nothing was claimed (empty, or too
--   many batches in flight).
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

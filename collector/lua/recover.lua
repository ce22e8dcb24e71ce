-- recover.lua: take a batch due again (a retry whose backoff passed, or a dead lander's whose
-- lease expired) for re-enqueueing, by one flusher only: every worker's flusher looks once a
-- second, and the batch must get one job. Its due time moves to next due.
-- KEYS: 1 pending set, 2 lease key.
-- ARGV: 1 batch id, 2 now (ms), 3 next due time (ms).
-- Reply: 1 to the flusher that took it, else 0.
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1

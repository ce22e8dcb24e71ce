-- finish.lua: forget a batch ClickHouse acknowledged (or found gone): its rows leave the
-- inflight count once (only if the batch key still existed), its pending entry, lease and
-- attempt count go.
-- KEYS: 1 pending set, 2 inflight counter, 3 batch key, 4 lease key, 5 attempts hash.
-- ARGV: 1 batch id, 2 rows landed.
-- Reply: 1.
if redis.call('DEL', KEYS[3]) == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[2])
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[4])
redis.call('HDEL', KEYS[5], ARGV[1])
return 1

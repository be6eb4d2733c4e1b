-- An AMQP event for a gateway user connected to no node: kept in the user's gateway inbox,
-- once cluster-wide (every node consumes its own copy of each event; the first to get here
-- stores it, the others find its mark).
-- KEYS[1] gateway conns (user -> devices, all nodes), KEYS[2] the user's gateway inbox,
-- KEYS[3] the event's mark
-- ARGV[1] user, ARGV[2] the event's frame JSON, ARGV[3] inbox max, ARGV[4] inbox ttl s,
-- ARGV[5] mark ttl s
-- Returns {stored 1/0, dropped from a full inbox, devices elsewhere}
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n > 0 then return {0, 0, n} end
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', tonumber(ARGV[5])) then return {0, 0, 0} end
local max = tonumber(ARGV[3])
local len = redis.call('RPUSH', KEYS[2], ARGV[2])
local dropped = 0
if len > max then
  dropped = len - max
  redis.call('LTRIM', KEYS[2], -max, -1)
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return {1, dropped, 0}

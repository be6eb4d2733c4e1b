-- This node now holds ARGV[2] connections of user ARGV[1] (an absolute count, so the script can
-- be sent again after an outage without counting twice): the node's count is set and the
-- user's count across all nodes moves by the difference.
-- KEYS[1] conns (user -> connections, all nodes), KEYS[2] this node's conns, KEYS[3] nodes
-- (node -> last beat, ms); ARGV[1] user, ARGV[2] count, ARGV[3] this node
local t = redis.call('TIME')
redis.call('ZADD', KEYS[3], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[3])
local n = tonumber(ARGV[2])
local old = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if n > 0 then redis.call('HSET', KEYS[2], ARGV[1], n) else redis.call('HDEL', KEYS[2], ARGV[1]) end
local total = redis.call('HINCRBY', KEYS[1], ARGV[1], n - old)
if total <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return total

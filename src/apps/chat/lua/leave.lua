-- A user's last connection on this node left the room: unregister, publish the presence
-- notice when it was the user's last node, and start the room's TTL when it is empty.
-- KEYS[1..5] as join.lua; ARGV[1..6] as join.lua, ARGV[7] ttl seconds (0: never expires)
if redis.call('SREM', KEYS[3], ARGV[3]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
if n > 0 then return n end
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  local ttl = tonumber(ARGV[7])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[4], ttl)
    redis.call('EXPIRE', KEYS[5], ttl)
  end
end
if redis.call('HLEN', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return 0

-- A private message, a notification or a disconnect for a user on every node: published on
-- the user's channel (and the sender's copy on the sender's) when the user has a connection
-- anywhere; a notification with store = 1 for a user with none is kept in the inbox.
-- KEYS[1] conns, KEYS[2] inbox
-- ARGV[1] user, ARGV[2] channel, ARGV[3] envelope, ARGV[4] second channel or '',
-- ARGV[5] second envelope, ARGV[6] store (1/0), ARGV[7] stored json, ARGV[8] inbox max,
-- ARGV[9] inbox ttl seconds
-- Returns {connections, stored (1/0), dropped from a full inbox}
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n > 0 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
  return {n, 0, 0}
end
if ARGV[6] ~= '1' then return {0, 0, 0} end
local max = tonumber(ARGV[8])
local len = redis.call('RPUSH', KEYS[2], ARGV[7])
local dropped = 0
if len > max then
  dropped = len - max
  redis.call('LTRIM', KEYS[2], -max, -1)
end
redis.call('EXPIRE', KEYS[2], ARGV[9])
return {0, 1, dropped}

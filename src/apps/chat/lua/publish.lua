-- A room message: the next seq, the capped history list, and the publish, atomically. The
-- history keeps the whole envelope (header and JSON), so a node filling a gap knows where each
-- message came from.
-- KEYS[1] seq, KEYS[2] hist
-- ARGV[1] channel, ARGV[2] json before the seq, ARGV[3] json after the seq,
-- ARGV[4] history size (0: keep none), ARGV[5] envelope header before the seq,
-- ARGV[6] '1': only into a room that exists (an API publish does not create one): -1 if not,
-- ARGV[7] floor: the seq is above it (a replay after an outage numbers above what its origin
-- reached on its own)
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[7])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], string.format('%d', seq))
end
local s = string.format('%d', seq)
local env = ARGV[5] .. s .. '\n' .. ARGV[2] .. s .. ARGV[3]
local cap = tonumber(ARGV[4])
if cap > 0 then
  redis.call('RPUSH', KEYS[2], env)
  redis.call('LTRIM', KEYS[2], -cap, -1)
end
redis.call('PUBLISH', ARGV[1], env)
return seq

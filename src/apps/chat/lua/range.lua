-- The kept history of a room from seq ARGV[1] on (the newest ARGV[2] when ARGV[1] is -1),
-- with the room's seq and the seq of the first message returned.
-- KEYS[1] seq, KEYS[2] hist
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local len = redis.call('LLEN', KEYS[2])
local first = seq - len + 1
local from = tonumber(ARGV[1])
if from < 0 then
  from = math.max(first, seq - tonumber(ARGV[2]) + 1)
elseif from < first then
  from = first
end
if from > seq then return {seq, from, {}} end
return {seq, from, redis.call('LRANGE', KEYS[2], from - first, -1)}

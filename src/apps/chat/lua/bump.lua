-- After an outage: a room's Redis seq is raised to what this node reached on its own, so a
-- seq is never given out twice to the same node's members. KEYS[1] seq; ARGV[1] local seq.
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local mine = tonumber(ARGV[1])
if mine > seq then
  redis.call('SET', KEYS[1], string.format('%d', mine))
  return mine
end
return seq

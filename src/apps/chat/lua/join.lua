-- A join: registers the user in the room for this node (when ARGV[7] is 1), publishes the
-- presence notice when it is the user's first node in the room, and answers what the joiner
-- needs: the room's seq, its users, and its history after ARGV[8] (-1: none).
-- KEYS[1] members (user -> nodes), KEYS[2] rooms (room -> users), KEYS[3] this node's
-- memberships, KEYS[4] seq, KEYS[5] hist, KEYS[6] nodes (node -> last beat, ms)
-- ARGV[1] room, ARGV[2] user, ARGV[3] membership key, ARGV[4] presence max, ARGV[5] room
-- channel, ARGV[6] presence envelope, ARGV[7] register, ARGV[8] since, ARGV[9] this node
if ARGV[7] == '1' then
  -- Alive (a node killed before its first beat must still be found dead by the others).
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[6], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[9])
end
if ARGV[7] == '1' and redis.call('SADD', KEYS[3], ARGV[3]) == 1 then
  if redis.call('HINCRBY', KEYS[1], ARGV[2], 1) == 1 then
    redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
    if redis.call('HLEN', KEYS[1]) <= tonumber(ARGV[4]) then
      redis.call('PUBLISH', ARGV[5], ARGV[6])
    end
  end
  -- The seq key is the room's existence (an API publish does not create a room): a room
  -- joined but never written to exists too. Kept while it has members, for the TTL after.
  redis.call('SET', KEYS[4], '0', 'NX')
  redis.call('PERSIST', KEYS[4])
  redis.call('PERSIST', KEYS[5])
end
local seq = tonumber(redis.call('GET', KEYS[4]) or '0')
local users = redis.call('HKEYS', KEYS[1])
local since = tonumber(ARGV[8])
if since < 0 then
  return {seq, users, 0, {}}
end
-- Kept entries are read by their own seq (envelope header "cc1 KIND ORIGIN ROOM SEQ\n"), not by
-- position: after an outage the seqs kept may have holes.
local all = redis.call('LRANGE', KEYS[5], 0, -1)
local first = seq + 1
if #all > 0 then
  first = tonumber(string.match(all[1], '^%S+ %S+ %S+ %S+ (%d+)\n')) or 0
end
if since > seq then return {seq, users, first, all} end
local out = {}
for i = 1, #all do
  local s = tonumber(string.match(all[i], '^%S+ %S+ %S+ %S+ (%d+)\n')) or 0
  if s > since then out[#out + 1] = all[i] end
end
return {seq, users, first, out}

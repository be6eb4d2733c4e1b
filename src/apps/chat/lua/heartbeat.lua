-- This node is alive; nodes silent for longer than ARGV[2] ms are removed and their members
-- and connections taken out of the counts, with presence notices.
-- KEYS[1] nodes (zset node -> last beat, ms); ARGV[1] this node, ARGV[2] expiry ms,
-- ARGV[3] key prefix, ARGV[4] presence max, ARGV[5] envelope header of a presence notice
-- before its origin ("cc1 presence "): each leave notice is sent in the dead node's name (so
-- that every live node, this one included, delivers it), built per member here; ARGV[6] the
-- room TTL in seconds (a room left empty by a dead node expires like one left by its users);
-- ARGV[7] '1': this node's own registrations go too (the first beat of a process, which may
-- reuse the id of a killed one).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = ARGV[3]
local expiry = tonumber(ARGV[2])
-- When nobody at all could beat for longer than the expiry, Redis itself was stalled (or
-- unreachable for everyone): the silence says nothing about the nodes, so nobody is reaped
-- this time; they beat again (or reconnect and register again) before the next beat.
-- The beats the nodes sent during the stall run in a burst when it ends: the quiet period
-- lasts one more expiry, so that every node has beaten (or given Redis up and registered
-- again) before anyone is judged.
local last = tonumber(redis.call('GET', p .. ':lastbeat') or '0')
redis.call('SET', p .. ':lastbeat', now)
if last > 0 and now - last > expiry then
  redis.call('SET', p .. ':quiet', now + expiry)
end
local quiet = tonumber(redis.call('GET', p .. ':quiet') or '0')
local dead = {}
if ARGV[7] == '1' then dead[1] = ARGV[1] end
if now >= quiet then
  for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - expiry)) do
    if node ~= ARGV[1] then dead[#dead + 1] = node end
  end
end
for _, node in ipairs(dead) do
  local rm = p .. ':node:' .. node .. ':rm'
  for _, m in ipairs(redis.call('SMEMBERS', rm)) do
    local nl = string.find(m, '\n', 1, true)
    local room, user = string.sub(m, 1, nl - 1), string.sub(m, nl + 1)
    local members = p .. ':members:' .. room
    if redis.call('HINCRBY', members, user, -1) <= 0 then
      redis.call('HDEL', members, user)
      if redis.call('HINCRBY', p .. ':rooms', room, -1) <= 0 then
        redis.call('HDEL', p .. ':rooms', room)
        -- Empty now: the room's TTL starts, as after a leave (general never expires).
        if room ~= 'general' then
          redis.call('EXPIRE', p .. ':seq:' .. room, tonumber(ARGV[6]))
          redis.call('EXPIRE', p .. ':hist:' .. room, tonumber(ARGV[6]))
        end
      end
      if redis.call('HLEN', members) < tonumber(ARGV[4]) then
        local esc = string.gsub(user, '[^!-$&-~]', function(c) return string.format('%%%02X', string.byte(c)) end)
        local json = '{"type":"room.leave","room":' .. cjson.encode(room) .. ',"from":"system","user":' ..
          cjson.encode(user) .. ',"content":' .. cjson.encode(user .. ' left') .. '}'
        redis.call('PUBLISH', p .. ':room:' .. room, ARGV[5] .. node .. ' ' .. room .. ' ' .. esc .. '\n' .. json)
      end
    end
  end
  redis.call('DEL', rm)
  local conns = p .. ':node:' .. node .. ':conns'
  local kv = redis.call('HGETALL', conns)
  for i = 1, #kv, 2 do
    if redis.call('HINCRBY', p .. ':conns', kv[i], -tonumber(kv[i + 1])) <= 0 then
      redis.call('HDEL', p .. ':conns', kv[i])
    end
  end
  redis.call('DEL', conns)
  -- The same for the gateway's devices (apps/gateway/offline.rs).
  local gw = p .. ':node:' .. node .. ':gwconns'
  kv = redis.call('HGETALL', gw)
  for i = 1, #kv, 2 do
    if redis.call('HINCRBY', p .. ':gwconns', kv[i], -tonumber(kv[i + 1])) <= 0 then
      redis.call('HDEL', p .. ':gwconns', kv[i])
    end
  end
  redis.call('DEL', gw)
  redis.call('ZREM', KEYS[1], node)
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
return #dead

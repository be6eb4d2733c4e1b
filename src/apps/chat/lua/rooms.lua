-- Rooms with members anywhere (room -> users) and, when ARGV[1] is not '', that room's users.
-- KEYS[1] rooms, KEYS[2] members of ARGV[1] (any key when ARGV[1] is '')
local rooms = redis.call('HGETALL', KEYS[1])
if ARGV[1] == '' then return {rooms, {}} end
return {rooms, redis.call('HKEYS', KEYS[2])}

-- Takes a user's stored notifications, oldest first, exactly once (a second taker at the same
-- moment gets none). KEYS[1] inbox
local items = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return items

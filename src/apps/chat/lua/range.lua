-- The kept history of a room from seq ARGV[1] on (the newest ARGV[2] when ARGV[1] is -1),
-- with the room's seq and the seq of the first message returned.
-- KEYS[1] seq, KEYS[2] hist
-- Entries are read by their own seq (their envelope header, "cc1 KIND ORIGIN ROOM SEQ\n"),
-- not by their position: after an outage the seqs kept may have holes (a bump skips some).
local function seq_of(e)
  return tonumber(string.match(e, '^%S+ %S+ %S+ %S+ (%d+)\n')) or 0
end
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local all = redis.call('LRANGE', KEYS[2], 0, -1)
local from = tonumber(ARGV[1])
local out = {}
if from < 0 then
  for i = math.max(1, #all - tonumber(ARGV[2]) + 1), #all do out[#out + 1] = all[i] end
else
  for i = 1, #all do
    if seq_of(all[i]) >= from then out[#out + 1] = all[i] end
  end
end
if #out > 0 then return {seq, seq_of(out[1]), out} end
return {seq, math.max(from, seq + 1), out}

-- History reads on Redis (docs/ARCHITECTURE.md, "Cluster mode"): a room's
-- seq and its kept events after a seq, read at one instant.
--
-- KEYS: 1 the room (hash: seq, seed, ttl), 2 its history stream.
-- ARGV: 1 the first id wanted ("<since + 1>-0"), 2 most events.
-- Returns {now ms} for a room with no record, else {now ms, seq, ttl ms,
-- {id, frame, kept at ms}...}.

local t = redis.call('TIME')
local now_ms = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local room = redis.call('HMGET', KEYS[1], 'seq', 'ttl')
if not room[1] then return {now_ms} end
local out = {now_ms, room[1], room[2] or '0'}
for _, entry in ipairs(redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])) do
  local fields = {}
  for i = 1, #entry[2], 2 do fields[entry[2][i]] = entry[2][i + 1] end
  table.insert(out, {entry[1], fields['f'], fields['t']})
end
return out

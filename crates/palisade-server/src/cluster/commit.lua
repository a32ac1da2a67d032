-- The commit step on Redis (docs/ARCHITECTURE.md, "Cluster mode"): one
-- call per accepted message, atomic, in pipeline order. A refusal changes
-- nothing; an accepted event gets the room's next seq, is kept, and is
-- published, so every node hears a room's events in seq order.
--
-- KEYS: 1 the user's limiter for the event, 2 the user's nonces (zset by
-- keep-until), 3 the user's nonce timestamps (hash), 4 users with live
-- nonces (zset by their last keep-until), 5 the live nonce count, 6 the
-- forgotten-timestamp floor, 7 the room (hash: seq, seed, ttl), 8 the
-- room's history stream.
-- ARGV: 1 interval us (0: no rate), 2 tolerance us, 3 dry run (0/1),
-- 4 nonce ("" none), 5 its ts ms, 6 keep-until ms, 7 per-user quota,
-- 8 total quota, 9 what comes before a user's name in its nonce keys, 10 history keep,
-- 11 history ttl ms, 12 room ttl ms, 13 frame before the seq, 14 frame
-- after it, 15 channel, 16 the user.
-- Returns {0, seq, unenforced wait us or -1} or {refusal, wait us, -1}:
-- 1 rate, 2 nonce seen, 3 forgotten, 4 user full, 5 store full.

local function int(n) return string.format('%.0f', n) end

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)

local unenforced = -1
local interval = tonumber(ARGV[1])
local tat
if interval > 0 then
  tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now_us)
  local earliest = tat - tonumber(ARGV[2])
  if now_us < earliest then
    if ARGV[3] == '0' then return {1, earliest - now_us, -1} end
    unenforced = earliest - now_us
    tat = nil
  end
end

-- Forgets a user's due nonces, raising the floor to their timestamps.
local function forget(zset, hash)
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now_ms)
  if #due == 0 then return end
  local floor = tonumber(redis.call('GET', KEYS[6]) or '0')
  for _, n in ipairs(due) do
    floor = math.max(floor, tonumber(redis.call('HGET', hash, n) or '0'))
    redis.call('HDEL', hash, n)
  end
  redis.call('ZREMRANGEBYSCORE', zset, '-inf', now_ms)
  redis.call('SET', KEYS[6], int(floor))
  redis.call('DECRBY', KEYS[5], #due)
end

local nonce = ARGV[4]
if nonce ~= '' then
  -- A few users whose nonces are all due, so the count goes down even
  -- for users who never come back.
  for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms, 'LIMIT', 0, 4)) do
    forget(ARGV[9] .. user .. '}:set', ARGV[9] .. user .. '}:ts')
    redis.call('ZREM', KEYS[4], user)
  end
  forget(KEYS[2], KEYS[3])
  if redis.call('ZSCORE', KEYS[2], nonce) then return {2, 0, -1} end
  local ts = tonumber(ARGV[5])
  if ts <= tonumber(redis.call('GET', KEYS[6]) or '0') then return {3, 0, -1} end
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then return {4, 0, -1} end
  if tonumber(redis.call('GET', KEYS[5]) or '0') >= tonumber(ARGV[8]) then return {5, 0, -1} end
  local keep_until = tonumber(ARGV[6])
  redis.call('ZADD', KEYS[2], int(keep_until), nonce)
  redis.call('HSET', KEYS[3], nonce, int(ts))
  redis.call('INCR', KEYS[5])
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  redis.call('ZADD', KEYS[4], last[2], ARGV[16])
end

if tat then
  local next_tat = tat + interval
  redis.call('SET', KEYS[1], int(next_tat), 'PX', math.floor((next_tat - now_us) / 1000) + 1)
end

-- A room with no record starts from the clock (1,000 per millisecond), so
-- its seq is above any an earlier life of it gave.
local seq
if redis.call('EXISTS', KEYS[7]) == 0 then
  seq = now_ms * 1000 + 1
  redis.call('HSET', KEYS[7], 'seed', int(seq - 1), 'seq', int(seq))
else
  seq = redis.call('HINCRBY', KEYS[7], 'seq', 1)
end
local keep = tonumber(ARGV[10])
redis.call('HSET', KEYS[7], 'ttl', ARGV[11])
redis.call('PEXPIRE', KEYS[7], ARGV[12])
local s = int(seq)
local frame = ARGV[13] .. s .. ARGV[14]
if keep > 0 then
  redis.call('XADD', KEYS[8], 'MAXLEN', keep, s .. '-0', 'f', frame, 't', int(now_ms))
  redis.call('PEXPIRE', KEYS[8], ARGV[11])
end
redis.call('PUBLISH', ARGV[15], s .. ' ' .. frame)
return {0, seq, unenforced}

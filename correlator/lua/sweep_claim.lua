#!lua flags=allow-oom
-- sweep_claim.lua (after clock.lua): claim up to ARGV[1] expired items of one shard for ARGV[2]
-- ms (a lease).
--
-- Claiming re-scores an item to the end of its lease, so other instances skip it; the
-- claimant reports it with sweep_report.lua, which only acts if the item still carries that
-- lease. An instance that dies after claiming delays the report by one lease, loses nothing.
-- allow-oom (the shebang, Redis 7): a claim only re-scores entries, so it runs even when Redis
-- is over maxmemory; reporting what expired is how parked memory is given back.
-- KEYS: 1 <p>:{s}:due, 2 <p>:{s}:stats
-- Returns {now, oldest expiry claimed (0 if none), parked pushes, parked builds,
--          member 1, lease 1, member 2, lease 2, …}.
local limit = tonumber(ARGV[1])
local lease = now + tonumber(ARGV[2])
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local stats = redis.call('HMGET', KEYS[2], 'r', 'b')
local out = { now, 0, tonumber(stats[1]) or 0, tonumber(stats[2]) or 0 }
for i = 1, #items, 2 do
  if i == 1 then out[2] = tonumber(items[2]) end
  if string.len(items[i]) == 65 then
    redis.call('ZADD', KEYS[1], lease, items[i])
    out[#out + 1] = items[i]
    out[#out + 1] = lease
  else
    -- Not "<side><64 hex>" (e.g. an older layout's member): it would be claimed forever.
    redis.call('ZREM', KEYS[1], items[i])
  end
end
return out

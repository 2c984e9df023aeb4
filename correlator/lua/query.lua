-- query.lua: everything stored about one digest, read atomically in one round trip.
-- KEYS: 1 r, 2 b, 3 m, 4 d (see park.lua). Returns {now ms, mappings, pushes, builds, deletes};
-- parked entries carry their own expiry ("exp"), which the caller compares with now.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
return { now, redis.call('HVALS', KEYS[3]), redis.call('HVALS', KEYS[1]),
         redis.call('HVALS', KEYS[2]), redis.call('HVALS', KEYS[4]) }

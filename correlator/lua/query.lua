-- query.lua (after clock.lua): everything stored about one digest, read atomically in one
-- round trip.
-- KEYS: 1 r, 2 b, 3 m, 4 d (see park.lua).
-- Returns {now ms, mapping values, parked pushes (field, value, …), parked builds (field,
-- value, …), delete values}; parked items carry their expiry ("x"), which the caller
-- compares with now: expired ones are no longer joinable, so not pending.
return { now, redis.call('HVALS', KEYS[3]), redis.call('HGETALL', KEYS[1]),
         redis.call('HGETALL', KEYS[2]), redis.call('HVALS', KEYS[4]) }

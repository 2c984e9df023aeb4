-- sink_dead.lua: move one output record a webhook sink gave up on to the dead-letter stream and
-- acknowledge it, atomically (dm_sink).
--
-- KEYS (one shard, one hash slot): 1 <prefix>:{s}:out, 2 <prefix>:{s}:dead
-- ARGV: 1 group, 2 entry id, 3 (unused: was the dead stream's MAXLEN), 4 type, 5 digest,
--       6 event, 7 sink name, 8 attempts, 9 last error, 10 failed_at (ms)
-- The entry is appended untrimmed: the trimmer (dm_trim.h, trim.lua) cuts the dead-letter stream
-- to its newest outputs.stream_maxlen entries every trim_interval_ms and counts and logs what it
-- drops, where an XADD MAXLEN here would drop old dead letters silently.
-- Idempotent: a record no longer pending in the group (acknowledged already, e.g. by an
-- earlier call whose reply was lost) is not written twice. Without the group (Redis lost it),
-- the record is written: the caller still holds it and nothing else will.
-- Returns 1 when written, 0 when it was no longer pending.
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(pending) == 'table' and not pending.err and #pending == 0 then
  return 0
end
redis.call('XADD', KEYS[2], '*',
  'type', ARGV[4], 'digest', ARGV[5], 'event', ARGV[6], 'sink', ARGV[7],
  'stream_id', ARGV[2], 'attempts', ARGV[8], 'error', ARGV[9], 'failed_at', ARGV[10])
redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1

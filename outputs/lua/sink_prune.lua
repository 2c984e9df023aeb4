-- sink_prune.lua: remove a sink group's stale consumers (dm_sink.c, "Consumers").
--
-- XINFO CONSUMERS and XGROUP DELCONSUMER in one script, so that no consumer is handed an entry
-- between the check and the removal: Redis 7.0 does not refresh a consumer's idle time on a
-- read that returns nothing, so a live instance's consumer does pass the limit in a quiet
-- period, and one read that returns an entry just then would otherwise put the entry in the
-- PEL of a consumer about to be removed with it (the record would then never be delivered
-- again if its delivery failed). Removing a live instance's consumer with nothing pending costs
-- nothing: its next read that returns an entry creates it again.
--
-- KEYS: 1 <p>:{s}:out
-- ARGV: 1 group, 2 this consumer, 3 idle limit (ms), 4 most removals
-- Returns {{name, idle, …} removed, {name, idle, pending, …} kept for their entries}.
local limit, most = tonumber(ARGV[3]), tonumber(ARGV[4])
local removed, kept = {}, {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c - 1, 2 do f[c[i]] = c[i + 1] end
  if f.name ~= ARGV[2] and tonumber(f.idle) > limit then
    if tonumber(f.pending) > 0 then
      table.insert(kept, f.name); table.insert(kept, f.idle)
      table.insert(kept, f.pending)
    elseif #removed < 2 * most then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f.name)
      table.insert(removed, f.name); table.insert(removed, f.idle)
    end
  end
end
return { removed, kept }

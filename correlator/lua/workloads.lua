#!lua
-- workloads.lua: replace one shard's part of a cluster's inventory with a snapshot's
-- (POST to a k8s source, docs/workloads.md), atomically. The ingest calls it once per shard,
-- every shard, since a shard can lose all its workloads.
--
-- The shebang line declares a script that writes, with Redis 7's default flags: over maxmemory
-- Redis refuses the call before it runs (an OOM error, answered 503 + Retry-After), so a shard
-- is never half replaced.
--
-- KEYS: 1 <p>:{s}:wc:<cluster>  hash  "<namespace>/<kind>/<name>" -> JSON array of its digests
--                                     in this shard; "\t" -> taken_at (ms) of the snapshot stored
--   and, undeclared but in the same slot (same {s} tag), built from ARGV[1]:
--       <p>:{s}:w:<digest>       hash  "<cluster>/<namespace>/<kind>/<name>" -> workload JSON
--       <p>:{s}:xw:<exposure>    zset  "<cluster>/<namespace>/<kind>/<name>|<digest>", score 0
-- ARGV: 1 "<p>:{s}:", 2 cluster, 3 the snapshot's taken_at (ms), 4 ttl ms
--       (correlation.findings_ttl_seconds), 5 this shard's part of the snapshot, a JSON array:
--       [{"k": "<namespace>/<kind>/<name>", "x": "<exposure>", "w": "<workload JSON text>",
--         "d": [its digests in this shard]}]
-- Returns {stale (1: a newer snapshot is stored, nothing written), stored taken_at (0: none),
--          workloads stored, (workload, digest) pairs removed}.
--
-- A snapshot as old as the stored one is applied again: a retry after a 503 that reached only
-- some shards completes it. Every key written gets the ttl again, so a cluster that stops
-- reporting fades out with its keys; GET /v1/exposure skips index entries whose w:<digest>
-- no longer names the workload at that exposure.

local inv_key = KEYS[1]
local base, cluster = ARGV[1], ARGV[2]
local taken_at = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local part = cjson.decode(ARGV[5])
local LEVELS = { 'internet', 'node', 'cluster' }

local stored = tonumber(redis.call('HGET', inv_key, '\t') or '') or 0
if stored > taken_at then return { 1, stored, 0, 0 } end

-- The stored part: workload -> its digests in this shard.
local old = {}
local all = redis.call('HGETALL', inv_key)
for i = 1, #all, 2 do
  if all[i] ~= '\t' then
    local ok, digests = pcall(cjson.decode, all[i + 1])
    old[all[i]] = (ok and type(digests) == 'table') and digests or {}
  end
end

-- Write the new part first (over maxmemory the first write fails before anything is removed).
local new, touched, levels = {}, {}, {}
redis.call('DEL', inv_key)
redis.call('HSET', inv_key, '\t', tostring(taken_at))
for _, w in ipairs(part) do
  local wkey = cluster .. '/' .. w.k
  local set = {}
  for _, d in ipairs(w.d) do
    set[d] = true
    redis.call('HSET', base .. 'w:' .. d, wkey, w.w)
    touched[d] = true
    redis.call('ZADD', base .. 'xw:' .. w.x, 0, wkey .. '|' .. d)
    levels[w.x] = true
    -- the exposure may have changed since the last snapshot
    for _, l in ipairs(LEVELS) do
      if l ~= w.x then redis.call('ZREM', base .. 'xw:' .. l, wkey .. '|' .. d) end
    end
  end
  new[w.k] = set
  redis.call('HSET', inv_key, w.k, cjson.encode(w.d))
end

-- Remove the workloads and digests the snapshot no longer has.
local removed = 0
for k, digests in pairs(old) do
  local wkey = cluster .. '/' .. k
  local keep = new[k] or {}
  for _, d in ipairs(digests) do
    if type(d) == 'string' and not keep[d] then
      redis.call('HDEL', base .. 'w:' .. d, wkey)
      for _, l in ipairs(LEVELS) do
        if redis.call('ZREM', base .. 'xw:' .. l, wkey .. '|' .. d) > 0 then levels[l] = true end
      end
      removed = removed + 1
    end
  end
end

redis.call('PEXPIRE', inv_key, ttl)
for d in pairs(touched) do redis.call('PEXPIRE', base .. 'w:' .. d, ttl) end
for l in pairs(levels) do redis.call('PEXPIRE', base .. 'xw:' .. l, ttl) end
return { 0, stored, #part, removed }

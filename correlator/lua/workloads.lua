#!lua
-- workloads.lua: replace one shard's part of a cluster's inventory with a snapshot's
-- (POST to a k8s source, docs/workloads.md), atomically. The ingest calls it once per shard,
-- every shard, since a shard can lose all its workloads.
--
-- The shebang line declares a script that writes, with Redis 7's default flags: over maxmemory
-- Redis refuses the call before it runs (an OOM error, answered 503 + Retry-After), so a shard
-- is never half replaced.
--
-- KEYS: 1 <p>:{s}:wc:<cluster>  hash  "<namespace>/<kind>/<name>" -> {"d": [its digests in
--                                     this shard], "i": [all its digests, every shard]};
--                                     "\t" -> taken_at (ms) of the snapshot stored
--   and, undeclared but in the same slot (same {s} tag), built from ARGV[1]:
--       <p>:{s}:w:<digest>       hash  "<cluster>/<namespace>/<kind>/<name>" -> workload JSON
--                                      without "images" (they are in its wc field, once)
--       <p>:{s}:xw:<exposure>    zset  "<cluster>/<namespace>/<kind>/<name>|<digest>", score 0
--       <p>:{s}:wc:<other cluster>  read only: is a w: field or xw member of another cluster
--                                      still in that cluster's inventory?
-- ARGV: 1 "<p>:{s}:", 2 cluster, 3 the snapshot's taken_at (ms), 4 ttl ms
--       (correlation.findings_ttl_seconds), 5 this shard's part of the snapshot, a JSON array:
--       [{"k": "<namespace>/<kind>/<name>", "x": "<exposure>", "w": "<workload JSON text
--         without images>", "d": [its digests in this shard], "i": [all its digests]}]
-- Returns {stale (1: a newer snapshot is stored, nothing written), stored taken_at (0: none),
--          workloads stored, (workload, digest) pairs removed (ghosts of other clusters too)}.
--
-- A snapshot as old as the stored one is applied again: a retry after a 503 that reached only
-- some shards completes it. Every key written gets the ttl again. A w:<digest> or xw key is
-- shared by the clusters running the digest, so another cluster's writes keep it alive after
-- a cluster stopped reporting: the truth is the cluster's wc key (written only by its own
-- snapshots), and a field or member whose workload is not in its cluster's wc:<cluster> of
-- this shard is a ghost. Readers skip ghosts (query.lua, exposure.lua); this script removes
-- those it meets under the digests it writes (docs/workloads.md "A cluster that stops
-- reporting").

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
    local ok, v = pcall(cjson.decode, all[i + 1])
    -- {"d": [...], "i": [...]}, or a bare array of the digests (stored before "i" existed)
    if ok and type(v) == 'table' and type(v.d) == 'table' then v = v.d end
    old[all[i]] = (ok and type(v) == 'table') and v or {}
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
  redis.call('HSET', inv_key, w.k, cjson.encode({ d = w.d, i = w.i }))
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

-- Ghosts of other clusters under the digests written: their workload left its cluster's
-- inventory (the cluster's wc key expired, or lost the workload) while this cluster's writes
-- kept the shared keys alive.
local listed = {}
local function in_inventory(wkey)
  local c, rest = string.match(wkey, '^([^/]+)/(.+)$')
  if not c then return false end
  if c == cluster then return true end -- this cluster's own were reconciled above
  local known = listed[wkey]
  if known == nil then
    known = redis.call('HEXISTS', base .. 'wc:' .. c, rest) == 1
    listed[wkey] = known
  end
  return known
end
local ghosts = 0
for d in pairs(touched) do
  for _, wkey in ipairs(redis.call('HKEYS', base .. 'w:' .. d)) do
    if not in_inventory(wkey) then
      redis.call('HDEL', base .. 'w:' .. d, wkey)
      for _, l in ipairs(LEVELS) do redis.call('ZREM', base .. 'xw:' .. l, wkey .. '|' .. d) end
      ghosts = ghosts + 1
    end
  end
end

redis.call('PEXPIRE', inv_key, ttl)
for d in pairs(touched) do redis.call('PEXPIRE', base .. 'w:' .. d, ttl) end
for l in pairs(levels) do redis.call('PEXPIRE', base .. 'xw:' .. l, ttl) end
return { 0, stored, #part, removed + ghosts }

#!lua
-- park.lua (after clock.lua and lib.lua): park one normalized event, probe the other side,
-- emit edges; atomically, so redeliveries and concurrent instances can never produce an edge
-- twice.
--
-- The shebang line (the build keeps it first, before the preludes) declares a script that
-- writes, with Redis 7's default flags: over maxmemory Redis refuses the call before it runs
-- (an OOM error, answered 503 + Retry-After), instead of letting a first write that frees
-- memory (HDEL) carry everything after it past the limit. Redis < 7 has no flags
-- (correlator/dm_redis.c drops the line there); for it, every path's first write is one Redis
-- checks against maxmemory (HSET, HSETNX), and the writes that only free memory come after.
--
-- KEYS (all of one shard, so one hash slot):
--   1 <p>:{s}:r:<digest>  hash  registry location -> parked push (internal JSON)
--   2 <p>:{s}:b:<digest>  hash  run key -> parked build (internal JSON)
--   3 <p>:{s}:m:<digest>  hash  edge id -> mapping (the record's "data", contract JSON)
--   4 <p>:{s}:d:<digest>  hash  registry location -> delete record
--   5 <p>:{s}:due         zset  "r<hex>" / "b<hex>" (side, digest) -> earliest expiry (ms)
--   6 <p>:{s}:out         stream of output records (contract)
--   7 <p>:{s}:stats       hash  r / b -> number of parked items
--   8 <p>:{s}:mi:<digest> zset  the edge ids of 3, score 0 (query.lua pages by id)
--   and, undeclared but in the same slot, the query indexes <p>:{s}:ix:… (see index_edge)
-- ARGV:
--   1 event JSON (adapters/dm_event.c dm_event_to_json)
--   2 window ms, 3 grace ms, 4 max clock skew ms, 5 mapping ttl ms
--   6 max builds per digest, 7 max locations per digest, 8 max tags per location
--     (limits.*: configs/README.md)
--   9 arrival ms: when the event reached digestmap (0 or absent: now). A spooled event replayed
--     later (docs/spool.md) passes its arrival, so the window applies as if it had arrived on
--     time: its event time is judged against the arrival for skew, its expiry counts from the
--     arrival, and the other side's items count as alive if they were alive then.
--   10 routing.min_severity as a rank (0 critical … 4 unknown), 11 findings ttl ms: after this
--     event confirmed an edge, the digest's findings are routed (lib.lua route_findings; only
--     when it has findings at all: one EXISTS on this hot path otherwise). Absent: no routing.
--   12 limits.max_findings_per_digest (bounds fr:<digest>, lib.lua route_findings)
-- Returns {edges emitted, duplicate (0/1: seen before, nothing new), event time replaced (0/1),
--          deletes recorded, items evicted by the per-digest bounds, finding.routed records}.
--
-- Work per call is bounded by the limits: one event reads at most max builds (a push) or max
-- locations (a build) parked items of the other side and so emits at most that many edges;
-- a digest keeps at most max builds parked builds, max locations parked pushes and delete
-- records, max tags tags per parked push, build and mapping: the most recent, the others are
-- dropped here (evicted, returned for digestmap_items_evicted_total) and never reported.

local ev = cjson.decode(ARGV[1])
local window = tonumber(ARGV[2])
local retention = window + tonumber(ARGV[3])
local max_skew = tonumber(ARGV[4])
local mapping_ttl = tonumber(ARGV[5])
local max_builds = tonumber(ARGV[6])
local max_locations = tonumber(ARGV[7])
local max_tags = tonumber(ARGV[8])
local arrival = tonumber(ARGV[9]) or 0
local min_rank = tonumber(ARGV[10])
local findings_ttl = tonumber(ARGV[11])
local max_findings = tonumber(ARGV[12])
if arrival <= 0 or arrival > now then arrival = now end
local digest = ev.digest
local evicted = 0

local skewed = 0
local t = tonumber(ev.t) or 0
if t <= 0 then
  t = arrival -- no event time given (a build without built_at): its arrival
elseif math.abs(t - arrival) > max_skew then
  t = arrival
  skewed = 1
end

-- An item's expiry: retention after its latest arrival (a replayed arrival never moves an
-- expiry that a later arrival set back).
local function expiry(old)
  return math.max(tonumber(old) or 0, arrival + retention)
end

-- The last max_tags strings of list (the most recently added), or list itself.
local function recent_tags(list)
  if type(list) ~= 'table' or #list <= max_tags then return list end
  local out = {}
  for i = #list - max_tags + 1, #list do out[#out + 1] = list[i] end
  return out
end

-- Merge tags `more` into `list` (kept in the order first seen, no repeats) and keep the
-- max_tags most recently added. Returns the list and whether it changed.
local function add_tags(list, more)
  local seen = {}
  for _, v in ipairs(list) do seen[v] = true end
  local changed = false
  if type(more) == 'table' then
    for _, v in ipairs(more) do
      if not seen[v] then list[#list + 1] = v; seen[v] = true; changed = true end
    end
  end
  if #list > max_tags then list = recent_tags(list); changed = true end
  return list, changed
end

-- A stored mapping (decoded) -> the same document, e.g. after merging tags.
local function enc_mapping(m)
  return '{"digest":' .. jstr(m.digest) .. ',"relation":' .. jstr(m.relation)
    .. (is_str(m.index) and (',"index":' .. jstr(m.index)) or '')
    .. ',"image":' .. enc_image_data(m.image) .. ',"build":' .. enc_build(m.build)
    .. ',"skew_ms":' .. string.format('%d', m.skew_ms) .. '}'
end

-- A location may be pushed several times (extra tags, re-pushes): p.t is the first push, p.u
-- up to MAX_PUSH_TIMES later ones. A build joins if one actual push is within the inclusive
-- window; the nearest one is the push the edge reports.
local MAX_PUSH_TIMES = 8
local function nearest_push(p, b)
  local best = p.t
  if type(p.u) == 'table' then
    for _, v in ipairs(p.u) do
      if math.abs(v - b.t) < math.abs(best - b.t) then best = v end
    end
  end
  if math.abs(best - b.t) <= window then return best end
  return nil
end

local function add_push_time(p, when)
  if type(p.u) ~= 'table' then p.u = {} end
  if when == p.t then return end
  for _, v in ipairs(p.u) do if v == when then return end end
  if when < p.t then when, p.t = p.t, when end
  p.u[#p.u + 1] = when
  table.sort(p.u)
  while #p.u > MAX_PUSH_TIMES do table.remove(p.u, 1) end -- keep the most recent
end

local edges = 0

-- Query indexes (GET /v1/mappings): one sorted set per shard and question, all scores 0, member
-- "<inverted confirmation time>|<digest>|<edge id>" with the inverted time 9999999999999 - ms
-- zero-padded to 13 digits, so lexicographic order is newest first and a page starts strictly
-- after the previous page's last member (ZRANGE BYLEX): exact pagination, no ties.
--   <p>:{s}:ix:repo:<build repository>     ("container images pushed by code repositories")
--   <p>:{s}:ix:run:<provider>/<run id>     (what a run produced, every attempt)
--   <p>:{s}:ix:img:<registry>/<repository> (which pipelines fed a registry repository)
-- They are written here, in the script that creates the edge, so an edge and its index entries
-- exist together or not at all. Their names come from KEYS[6] ("<p>:{s}:out" -> "<p>:{s}:"):
-- keys this script does not declare, but in the same hash slot as every declared key (the {s}
-- tag), which Redis Cluster serves from the same node. A proxy or a future Redis that refuses
-- undeclared keys outright would need them declared, which the caller cannot do: it does not
-- know which builds a push joins.
-- Expiry: an entry is kept mapping_ttl after its edge was confirmed (like the mapping itself),
-- trimmed on every write of its index (and by mappings.lua on every read), at most
-- INDEX_TRIM_BATCH entries a time so no call does unbounded work (mappings.lua never reads an
-- expired entry left over); the key expires mapping_ttl after its newest entry, so a quiet
-- index vanishes.
local BASE = string.sub(KEYS[6], 1, -4)
local INDEX_BASE = BASE .. 'ix:'
local function inverted(ms) return string.format('%013d', 9999999999999 - ms) end
local INDEX_TRIM_BATCH = 1000

local function index_edge(id, bb, loc)
  local member = inverted(now) .. '|' .. digest .. '|' .. id
  -- Expired: confirmed before now - mapping_ttl, i.e. inverted time >= inverted(that - 1).
  local stale = '[' .. inverted(math.max(now - mapping_ttl - 1, 0))
  local keys = { INDEX_BASE .. 'img:' .. loc }
  if is_str(bb.repository) and bb.repository ~= '' then
    keys[#keys + 1] = INDEX_BASE .. 'repo:' .. bb.repository
  end
  if is_str(bb.provider) and is_str(bb.run_id) and bb.run_id ~= '' then
    keys[#keys + 1] = INDEX_BASE .. 'run:' .. bb.provider .. '/' .. bb.run_id
  end
  for _, k in ipairs(keys) do
    redis.call('ZADD', k, 0, member)
    local gone = redis.call('ZRANGE', k, stale, '+', 'BYLEX', 'LIMIT', 0, INDEX_TRIM_BATCH)
    if #gone > 0 then redis.call('ZREM', k, unpack(gone)) end
    redis.call('PEXPIRE', k, mapping_ttl)
  end
end

-- Join parked push p (location loc), pushed at pushed_at, with parked build b (run key rk):
-- one edge per identity. Marks both sides matched; the caller stores them.
local function join(loc, p, pushed_at, rk, b)
  p.k = 1
  b.k = 1
  local id = redis.sha1hex(loc .. '@' .. digest .. '|' .. rk)
  local cur = redis.call('HGET', KEYS[3], id)
  if cur then
    local m = cjson.decode(cur)
    local changed
    m.image.tags, changed = add_tags(type(m.image.tags) == 'table' and m.image.tags or {}, p.g)
    if changed then
      redis.call('HSET', KEYS[3], id, enc_mapping(m))
    end
    return
  end
  local bb = b.b
  bb.built_at = iso(b.t)
  local data = '{"digest":' .. jstr(digest)
    .. ',"relation":' .. (b.r == 'p' and '"platform-manifest"' or '"image"')
    .. (is_str(b.i) and (',"index":' .. jstr(b.i)) or '')
    .. ',"image":' .. enc_image(loc, p, pushed_at) .. ',"build":' .. enc_build(bb)
    .. ',"skew_ms":' .. string.format('%d', pushed_at - b.t) .. '}'
  -- enc_mapping (tag merges) must write the same document from its decoded form.
  redis.call('HSET', KEYS[3], id, data)
  redis.call('PEXPIRE', KEYS[3], mapping_ttl)
  redis.call('ZADD', KEYS[8], 0, id)
  redis.call('PEXPIRE', KEYS[8], mapping_ttl)
  emit(KEYS[6], 'mapping.confirmed.v1', id, digest, data)
  index_edge(id, bb, loc)
  edges = edges + 1
end

-- Store a parked item and schedule its side of this digest for the sweeper (earliest expiry
-- wins: LT only ever moves the schedule earlier; the sweeper reschedules what is not due).
local function park(key, side, field, item, is_new)
  redis.call('HSET', key, field, store(item))
  redis.call('PEXPIRE', key, keep_ms(retention))
  redis.call('ZADD', KEYS[5], 'LT', item.x, side .. string.sub(digest, 8))
  if is_new then redis.call('HINCRBY', KEYS[7], side, 1) end
end

-- Keep at most max fields in hash key: drop the least recent ones other than field `keep`
-- (the one just written), the order being age(decoded value) ascending, then the field name
-- (a value that is not JSON counts as oldest). Returns how many were dropped and the age of
-- the oldest one left (nil when only `keep` is). O(1) while under the bound; a full hash
-- costs one pass over it, which the bound keeps small.
local function evict(key, max, keep, age)
  local n = redis.call('HLEN', key)
  if n <= max then return 0 end
  local all = redis.call('HGETALL', key)
  local items = {}
  for i = 1, #all, 2 do
    if all[i] ~= keep then
      local ok, v = pcall(cjson.decode, all[i + 1])
      items[#items + 1] = { age(ok and type(v) == 'table' and v or nil), all[i] }
    end
  end
  table.sort(items, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local drop = n - max
  for i = 1, drop, 1000 do -- unpack has a stack limit: a bound lowered by much drops many
    local batch = {}
    for j = i, math.min(i + 999, drop) do batch[#batch + 1] = items[j][2] end
    redis.call('HDEL', key, unpack(batch))
  end
  evicted = evicted + drop
  return drop, items[drop + 1] and items[drop + 1][1]
end

-- A parked item's age is its expiry (last arrival + retention).
local function parked_age(item) return item and tonumber(item.x) or 0 end

-- evict for a side's parked items: the stats counter follows, and the side's schedule moves
-- to the earliest expiry left (the new item's when it alone is left), so the sweeper is never
-- due for an item that is gone and never reports one.
local function evict_parked(key, side, max, keep, keep_x)
  local drop, oldest = evict(key, max, keep, parked_age)
  if drop == 0 then return end
  redis.call('HINCRBY', KEYS[7], side, -drop)
  redis.call('ZADD', KEYS[5], math.min(oldest or keep_x, keep_x), side .. string.sub(digest, 8))
end

-- A delete record's age is its deleted_at (ISO 8601 in UTC: text order is time order).
local function delete_age(rec)
  return rec and type(rec.image) == 'table' and is_str(rec.image.deleted_at)
    and rec.image.deleted_at or ''
end

-- An edge was confirmed: findings that were waiting for one are routed now (the finding came
-- first; findings.lua routes when the mapping came first).
local function route_after_edges()
  if edges == 0 or not min_rank or not findings_ttl then return 0 end
  if redis.call('EXISTS', BASE .. 'fs:' .. digest) == 0 then return 0 end
  return (route_findings(BASE, digest, min_rank, findings_ttl, max_findings))
end

if type(ev.tags) == 'table' then ev.tags = recent_tags(ev.tags) end

if ev.side == 'registry' then
  local loc = ev.registry .. '/' .. ev.repository
  if ev.action == 'delete' then
    local id = redis.sha1hex('deleted|' .. loc .. '@' .. digest)
    local data = '{"digest":' .. jstr(digest) .. ',"image":{"registry":' .. jstr(ev.registry)
      .. ',"repository":' .. jstr(ev.repository) .. ',"source":' .. jstr(ev.source)
      .. ',"event_id":' .. jstr(ev.event_id) .. ',"deleted_at":' .. jstr(iso(t)) .. '}}'
    local fresh = redis.call('HSETNX', KEYS[4], loc, data) == 1
    -- A deleted untagged manifest is no longer a finding: drop its pending report.
    local raw = redis.call('HGET', KEYS[1], loc)
    if raw then
      local p = cjson.decode(raw)
      if not p.k and #tags_of(p) == 0 then
        redis.call('HDEL', KEYS[1], loc)
        redis.call('HINCRBY', KEYS[7], 'r', -1)
      end
    end
    if fresh then
      redis.call('PEXPIRE', KEYS[4], mapping_ttl)
      evict(KEYS[4], max_locations, loc, delete_age)
      emit(KEYS[6], 'image.deleted.v1', id, digest, data)
      return { 0, 0, skewed, 1, evicted }
    end
    return { 0, 1, skewed, 0, 0 }
  end

  local p
  local raw = redis.call('HGET', KEYS[1], loc)
  if raw then
    p = cjson.decode(raw)
    p.g = add_tags(type(p.g) == 'table' and p.g or {}, ev.tags)
    add_push_time(p, t)
    if #p.u == 0 then p.u = nil end
  else
    p = { s = ev.source, e = ev.event_id, t = t, m = media_code(ev.media_type) }
    if type(ev.tags) == 'table' and #ev.tags > 0 then p.g = ev.tags end
  end
  p.x = expiry(raw and p.x or 0)

  local builds = redis.call('HGETALL', KEYS[2])
  for i = 1, #builds, 2 do
    local b = cjson.decode(builds[i + 1])
    local at = b.x >= arrival and nearest_push(p, b)
    if at then
      local was = b.k
      join(loc, p, at, builds[i], b)
      if not was then redis.call('HSET', KEYS[2], builds[i], store(b)) end
    end
  end
  park(KEYS[1], 'r', loc, p, raw == false)
  if raw == false then evict_parked(KEYS[1], 'r', max_locations, loc, p.x) end
  -- Pushed again after a delete: the image exists again, and its next delete is news.
  redis.call('HDEL', KEYS[4], loc)
  return { edges, (raw and edges == 0) and 1 or 0, skewed, 0, evicted, route_after_edges() }
end

-- build side
local bi = ev.build
local rk = bi.provider .. '/' .. bi.run_id .. '/' .. bi.run_attempt
local b
local raw = redis.call('HGET', KEYS[2], rk)
if raw then
  -- A redelivered build keeps its first event time: the join already judged it.
  b = cjson.decode(raw)
  b.g = recent_tags(b.g)
else
  b = { b = bi, t = t, i = ev.index, n = ev.name }
  if ev.relation == 'platform-manifest' then b.r = 'p' end
  if type(ev.tags) == 'table' and #ev.tags > 0 then b.g = ev.tags end
end
b.x = expiry(raw and b.x or 0)

local pushes = redis.call('HGETALL', KEYS[1])
for i = 1, #pushes, 2 do
  local p = cjson.decode(pushes[i + 1])
  p.g = recent_tags(p.g) -- stored before the bound existed (or under a larger one)
  local at = p.x >= arrival and nearest_push(p, b)
  if at then
    local was = p.k
    join(pushes[i], p, at, rk, b)
    if not was then redis.call('HSET', KEYS[1], pushes[i], store(p)) end
  end
end
park(KEYS[2], 'b', rk, b, raw == false)
if raw == false then evict_parked(KEYS[2], 'b', max_builds, rk, b.x) end
return { edges, (raw and edges == 0) and 1 or 0, skewed, 0, evicted, route_after_edges() }

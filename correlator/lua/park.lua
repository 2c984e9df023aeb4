#!lua
-- park.lua (after lib.lua; not clock.lua: its times are digestmapd's, ARGV 5 and 6): park one
-- normalized event, probe the other side, emit edges; atomically, so redeliveries and
-- concurrent instances can never produce an edge twice.
--
-- The shebang line (the build keeps it first, before the preludes) declares a script that
-- writes, with Redis 7's default flags: over maxmemory Redis refuses the call before it runs
-- (an OOM error, answered 503 + Retry-After), instead of letting a first write that frees
-- memory (HDEL) carry everything after it past the limit. Redis < 7 has no flags
-- (correlator/dm_redis.c drops the line there); for it, every path's first write is one Redis
-- checks against maxmemory (HSET, HSETNX), and the writes that only free memory come after.
--
-- KEYS (all of one shard, so one hash slot):
--   1 <p>:{s}:r:<digest>  hash  registry location -> parked push (internal JSON, lib.lua)
--   2 <p>:{s}:b:<digest>  hash  run key -> parked build (internal JSON, lib.lua)
--   3 <p>:{s}:d:<digest>  hash  registry location -> delete record
--   4 <p>:{s}:due         zset  "r<hex>" / "b<hex>" (side, digest) -> earliest expiry (ms)
--   5 <p>:{s}:stats       hash  r / b -> number of parked items
--   and, undeclared but in the same slot (named from the shard base "<p>:{s}:", KEYS[4]
--   without "due"), the keys only an edge writes, so that the common call does not pay for
--   passing their names:
--     <p>:{s}:m:<digest>  hash  edge id -> mapping (the record's "data", contract JSON)
--     <p>:{s}:mi:<digest> zset  the edge ids of m, score 0 (query.lua pages by id)
--     <p>:{s}:out         stream of output records (contract)
--     <p>:{s}:ix:…        the query indexes (see index_one)
--     <p>:{s}:ixn         string  the shard's edge counter that picks the trimming edges
--     <p>:{s}:fs:<digest> the findings summary, read after an edge (lib.lua route_findings)
--   A proxy or a future Redis that refuses undeclared keys outright would need them declared.
-- The digest is the end of KEYS[1].
-- ARGV (correlator/dm_join.c; 1 to 3 from adapters/dm_event_park.h dm_event_park_args):
--   1 kind: "p" a registry push, "d" a registry delete, "b" a build
--   2 field: the item's field, "<registry>/<repository>" (p, d) or
--     "<provider>/<run id>/<run attempt>" (b)
--   3 the event's members of its stored item (lib.lua "Parked items"), compact JSON text
--     without the braces, so that a new item is stored without any JSON work here:
--     p, d: "s", "e", "m", "g"; b: "f", "v", "xr", "r", "i", "n", "g"; tags already the
--     last max tags
--   4 event time ms, as stored: dm_join.c has already replaced it by the arrival when none was
--     given or it is further than max_clock_skew from the arrival (and counts that)
--   5 expiry ms, as stored: arrival + RETENTION_MS. The arrival is digestmapd's clock
--     (CLOCK_REALTIME): when the event reached digestmap, which for a live event is now. A
--     spooled event replayed later (docs/spool.md) passes its arrival (no later than now:
--     dm_join.c clamps it), so the window applies as if it had arrived on time: its event time
--     is judged against the arrival for skew, its expiry counts from the arrival, and the other
--     side's items count as alive if they were alive then.
--   6 (only when the arrival is not now: a replayed event) now ms, digestmapd's clock: the time
--     an edge is confirmed at (its record's "time", its query index order).
--   Not Redis's TIME (clock.lua): that is a call, and two tonumber, on every event, a tenth of
--   the common call's cost. So digestmapd's clock and Redis's must agree (docs/park-path.md
--   "Whose clock"). 4 and 5 are the text the common call stores: it converts no number.
-- The configuration (correlation.*, limits.*: configs/README.md) is not passed: dm_join.c
-- (dm_join_scripts) writes it into the script, as the line right after the shebang, when the
-- script is loaded (every argument costs every call about a thousand instructions, and
-- tonumber as many again; a constant costs nothing):
--   RETENTION_MS (window + grace: an item's expiry is its arrival plus this), PARKED_TTL (the
--   parked hashes' TTL in ms, text: they outlive their items, so the sweeper can still report
--   an expired one), WINDOW_MS, MAPPING_TTL (text) and MAPPING_TTL_MS,
--   MAX_BUILDS, MAX_LOCATIONS (parked pushes and delete records per digest), MAX_TAGS (per
--   location), and to route findings after an edge MIN_RANK (routing.min_severity as a rank,
--   0 critical … 4 unknown), FINDINGS_TTL_MS and MAX_FINDINGS (lib.lua route_findings; only
--   when the digest has findings at all: one EXISTS after an edge). FINDINGS_TTL_MS nil: no
--   routing.
-- Numbers that go to Redis as they are (the TTLs) are text: Redis would format a Lua number.
-- Returns one integer (a table costs Redis about 8 k instructions to turn into a reply, an
-- integer next to nothing), correlator/dm_join.c reads it back:
--   bit 0 unused (0: dm_join.c knows whether it replaced the event time), bit 1 duplicate (seen before, nothing new), bit 2 delete
--   recorded, bits 3-4 finding.routed records (0 or 1), bits 5-25 items evicted by the
--   per-digest bounds, from bit 26 edges emitted (both at most a hash's items, which the limits
--   keep at 100000: configs/README.md);
-- so the common call (below) returns 0.
--
-- Work per call is bounded by the limits: one event reads at most max builds (a push) or max
-- locations (a build) parked items of the other side and so emits at most that many edges;
-- a digest keeps at most max builds parked builds, max locations parked pushes and delete
-- records, max tags tags per parked push, build and mapping: the most recent, the others are
-- dropped here (evicted, returned for digestmap_items_evicted_total) and never reported.
--
-- The common call (a new item, nothing parked on the other side, the bound not reached) makes
-- only the Redis calls it needs (HLEN, HGETALL of the other side, HSET, PEXPIRE, ZADD,
-- HINCRBY, and for a push EXISTS of its delete records), decodes and encodes nothing and takes
-- nothing from lib.lua: Lua 5.1 makes every function, table and upvalue a script defines again
-- on every call, so what only the other paths use is defined after it.

local kind, field, members = ARGV[1], ARGV[2], ARGV[3]
-- The event time and the expiry, as text: an item's expiry is retention after its latest
-- arrival (a replayed arrival never moves an expiry that a later arrival set back). Numbers
-- made here are written with %d: Lua's own number-to-text (%.14g) costs several times more.
local t_text, x_text = ARGV[4], ARGV[5]

local push = kind == 'p'
local own, other, side, bound = KEYS[1], KEYS[2], 'r', MAX_LOCATIONS
if kind == 'b' then own, other, side, bound = KEYS[2], KEYS[1], 'b', MAX_BUILDS end
local n, raw, others
if kind ~= 'd' then
  n = redis.call('HLEN', own)
  raw = n > 0 and redis.call('HGET', own, field)
  others = redis.call('HGETALL', other)
  if not raw and #others == 0 and n < bound then
    -- The common call: a new item, nothing to join, room for it. park() below, inline.
    redis.call('HSET', own, field, '{"t":' .. t_text .. ',"x":' .. x_text .. ',' .. members .. '}')
    redis.call('PEXPIRE', own, PARKED_TTL)
    redis.call('ZADD', KEYS[4], 'LT', x_text, side .. string.sub(KEYS[1], -64))
    redis.call('HINCRBY', KEYS[5], side, '1')
    if push and redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HDEL', KEYS[3], field) end
    return 0
  end
end

local t, expiry = tonumber(t_text), tonumber(x_text)
local arrival = expiry - RETENTION_MS
-- The time of this call: the arrival, or a replayed event's ARGV 6.
local now = ARGV[6] and tonumber(ARGV[6]) or arrival
local digest = string.sub(KEYS[1], -71)
local base = string.sub(KEYS[4], 1, -4) -- "<p>:{s}:"
local evicted = 0

-- Keep at most max fields in hash key: drop the least recent ones other than field `keep`
-- (the one just written), the order being age(decoded value) ascending, then the field name
-- (a value that is not JSON counts as oldest). Returns how many were dropped and the age of
-- the oldest one left (nil when only `keep` is). O(1) while under the bound; a full hash
-- costs one pass over it, which the bound keeps small.
local function evict(key, max, keep, age)
  local count = redis.call('HLEN', key)
  if count <= max then return 0 end
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
  local drop = count - max
  for i = 1, drop, 1000 do -- unpack has a stack limit: a bound lowered by much drops many
    local batch = {}
    for j = i, math.min(i + 999, drop) do batch[#batch + 1] = items[j][2] end
    redis.call('HDEL', key, unpack(batch))
  end
  evicted = evicted + drop
  return drop, items[drop + 1] and items[drop + 1][1]
end

if kind == 'd' then
  local L = lib(now)
  local jstr = L.jstr
  local loc = field
  local ev = cjson.decode('{' .. members .. '}')
  local registry, repository = L.split_loc(loc)
  local id = redis.sha1hex('deleted|' .. loc .. '@' .. digest)
  local data = '{"digest":' .. jstr(digest) .. ',"image":{"registry":' .. jstr(registry)
    .. ',"repository":' .. jstr(repository) .. ',"source":' .. jstr(ev.s)
    .. ',"event_id":' .. jstr(ev.e) .. ',"deleted_at":' .. jstr(L.iso(t)) .. '}}'
  local fresh = redis.call('HSETNX', KEYS[3], loc, data) == 1
  -- A deleted untagged manifest is no longer a finding: drop its pending report.
  local pushed = redis.call('HGET', KEYS[1], loc)
  if pushed then
    local p = cjson.decode(pushed)
    if not p.k and #L.tags_of(p) == 0 then
      redis.call('HDEL', KEYS[1], loc)
      redis.call('HINCRBY', KEYS[5], 'r', -1)
    end
  end
  if fresh then
    -- A delete record's age is its deleted_at (ISO 8601 in UTC: text order is time order).
    local function delete_age(rec)
      return rec and type(rec.image) == 'table' and L.is_str(rec.image.deleted_at)
        and rec.image.deleted_at or ''
    end
    redis.call('PEXPIRE', KEYS[3], MAPPING_TTL)
    evict(KEYS[3], bound, loc, delete_age)
    L.emit(base .. 'out', 'image.deleted.v1', id, digest, data)
    return 4 + math.min(evicted, 2097151) * 32
  end
  return 2
end

-- Store the item (its stored text) and schedule its side of this digest for the sweeper
-- (earliest expiry wins: LT only ever moves the schedule earlier; the sweeper reschedules what
-- is not due). A new field is counted, and may take the hash over its bound: the least recent
-- items go, the stats counter follows, and the side's schedule moves to the earliest expiry
-- left (the new item's when it alone is left), so the sweeper is never due for an item that
-- is gone and never reports one. A pushed location drops its delete record: the image exists
-- again, and its next delete is news. (The common call above does the same, inline.)
local function park(text, x)
  local member = side .. string.sub(digest, 8)
  redis.call('HSET', own, field, text)
  redis.call('PEXPIRE', own, PARKED_TTL)
  redis.call('ZADD', KEYS[4], 'LT', x == expiry and x_text or string.format('%d', x), member)
  if not raw then
    redis.call('HINCRBY', KEYS[5], side, '1')
    if n >= bound then
      -- A parked item's age is its expiry (last arrival + retention).
      local drop, oldest = evict(own, bound, field, function(item)
        return item and tonumber(item.x) or 0
      end)
      if drop > 0 then
        redis.call('HINCRBY', KEYS[5], side, -drop)
        redis.call('ZADD', KEYS[4], string.format('%d', math.min(oldest or x, x)), member)
      end
    end
  end
  if push and redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HDEL', KEYS[3], field) end
end

-- A new item's stored text ("k": matched).
local function new_text(matched)
  return (matched and '{"k":1,"t":' or '{"t":') .. t_text .. ',"x":' .. x_text .. ','
    .. members .. '}'
end

local L = lib(now)
local jstr, is_str, tags_of = L.jstr, L.is_str, L.tags_of
local edges = 0

-- The last max_tags strings of list (the most recently added), or list itself.
local function recent_tags(list)
  if type(list) ~= 'table' or #list <= MAX_TAGS then return list end
  local out = {}
  for i = #list - MAX_TAGS + 1, #list do out[#out + 1] = list[i] end
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
  if #list > MAX_TAGS then list = recent_tags(list); changed = true end
  return list, changed
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
  if math.abs(best - b.t) <= WINDOW_MS then return best end
  return nil
end

-- Query indexes (GET /v1/mappings): one sorted set per shard and question, all scores 0, member
-- "<inverted confirmation time>|<digest>|<edge id>" with the inverted time 9999999999999 - ms
-- zero-padded to 13 digits, so lexicographic order is newest first and a page starts strictly
-- after the previous page's last member (ZRANGE BYLEX): exact pagination, no ties.
--   <p>:{s}:ix:repo:<build repository>     ("container images pushed by code repositories")
--   <p>:{s}:ix:run:<provider>/<run id>     (what a run produced, every attempt)
--   <p>:{s}:ix:img:<registry>/<repository> (which pipelines fed a registry repository)
-- They are written here, in the script that creates the edge, so an edge and its index entries
-- exist together or not at all; the caller could not declare them: it does not know which
-- builds a push joins.
-- Expiry: an entry is kept mapping_ttl after its edge was confirmed (like the mapping itself),
-- trimmed by mappings.lua on every read and by the writes of one edge in 16 of the shard (every
-- 16th edge the shard's counter <p>:{s}:ixn counts: not chosen by anything a sender sends, so
-- no sender can steer its edges around the trims), at most INDEX_TRIM_BATCH entries a time so no
-- call does unbounded work (mappings.lua never answers an expired entry left over); the key
-- expires mapping_ttl after its newest entry, so a quiet index vanishes. A trim is a call
-- (about 7 k instructions) that nearly always finds nothing: one write in 16 trims, and since
-- it may take up to 1000 expired entries where the 16 writes added 16, the expired entries an
-- index holds stay about those confirmed in the time of its last 16 writes, mapping_ttl ago
-- (docs/park-path.md "Query indexes").
local INDEX_TRIM_BATCH, INDEX_TRIM_EVERY = 1000, 16
local member_time = string.format('%013d', 9999999999999 - now)
local stale -- the trim's bound (made by the first trim)
local mkey, mikey = base .. 'm:' .. digest, base .. 'mi:' .. digest

local function index_one(key, entry, trim)
  redis.call('ZADD', key, '0', entry)
  if trim then
    -- Expired: confirmed before now - mapping_ttl, i.e. inverted time >= inverted(that - 1).
    stale = stale or '[' .. string.format('%013d',
      9999999999999 - math.max(now - MAPPING_TTL_MS - 1, 0))
    local gone = redis.call('ZRANGE', key, stale, '+', 'BYLEX', 'LIMIT', 0, INDEX_TRIM_BATCH)
    if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
  end
  redis.call('PEXPIRE', key, MAPPING_TTL)
end

-- Join parked push p (location loc), pushed at pushed_at, with parked build b (run key rk):
-- one edge per identity. Marks both sides matched; the caller stores them.
local function join(loc, p, pushed_at, rk, b)
  p.k = 1
  b.k = 1
  local id = redis.sha1hex(loc .. '@' .. digest .. '|' .. rk)
  local head = '{"digest":"' .. digest
    .. (b.r == 'p' and '","relation":"platform-manifest"' or '","relation":"image"')
    .. (is_str(b.i) and (',"index":' .. jstr(b.i)) or '')
  local image, skew = L.enc_image(loc, p, pushed_at), string.format('%d', pushed_at - b.t)
  local data, repo, run
  local new_form = is_str(b.f) and is_str(b.v)
  if new_form and b.f ~= '' and b.v ~= '' then
    -- The build's record object spliced in, in the same expression: one string, not two.
    data = head .. ',"image":' .. image .. ',"build":{' .. b.f .. ',"built_at":"' .. L.iso(b.t)
      .. '",' .. b.v .. '},"skew_ms":' .. skew .. '}'
  else
    local build
    build, repo, run = L.build_object(b, L.iso(b.t))
    data = head .. ',"image":' .. image .. ',"build":' .. build .. ',"skew_ms":' .. skew .. '}'
  end
  if new_form then
    -- The run's index is named by its run key without the attempt ("<provider>/<run id>":
    -- neither has a '/'); none without a provider or a run id.
    repo, run = b.xr, string.match(rk, '^([^/]+/[^/]+)/[^/]*$')
  end
  if redis.call('HSETNX', mkey, id, data) == 0 then
    -- Confirmed before: only tags it did not have yet change the stored mapping.
    local m = cjson.decode(redis.call('HGET', mkey, id))
    local changed
    m.image.tags, changed = add_tags(type(m.image.tags) == 'table' and m.image.tags or {}, p.g)
    if changed then
      -- The same document from its decoded form (enc_build writes the record's key order).
      redis.call('HSET', mkey, id, '{"digest":' .. jstr(m.digest) .. ',"relation":'
        .. jstr(m.relation) .. (is_str(m.index) and (',"index":' .. jstr(m.index)) or '')
        .. ',"image":' .. L.enc_image_data(m.image) .. ',"build":' .. L.enc_build(m.build)
        .. ',"skew_ms":' .. string.format('%d', m.skew_ms) .. '}')
    end
    return
  end
  redis.call('PEXPIRE', mkey, MAPPING_TTL)
  redis.call('ZADD', mikey, '0', id)
  redis.call('PEXPIRE', mikey, MAPPING_TTL)
  L.emit(base .. 'out', 'mapping.confirmed.v1', id, digest, data)
  local entry = member_time .. '|' .. digest .. '|' .. id
  local trim = redis.call('INCR', base .. 'ixn') % INDEX_TRIM_EVERY == 0
  index_one(base .. 'ix:img:' .. loc, entry, trim)
  if is_str(repo) and repo ~= '' then index_one(base .. 'ix:repo:' .. repo, entry, trim) end
  if is_str(run) then index_one(base .. 'ix:run:' .. run, entry, trim) end
  edges = edges + 1
end

-- The stored text of an item of the other side, now matched: its own text with "k" added
-- (nothing else of it changed), or encoded again when its tags were cut to the bound.
local function matched_text(text, item, recut)
  if recut then return L.store(item) end
  return '{"k":1,' .. string.sub(text, 2)
end

local item, matched_text_new
if raw then
  item = cjson.decode(raw)
  if push then
    -- A location pushed again: its tags merged, its push time added (the first one stays t).
    item.g = add_tags(tags_of(item), cjson.decode('{' .. members .. '}').g)
    if type(item.u) ~= 'table' then item.u = {} end
    local known = t == item.t
    for _, v in ipairs(item.u) do if v == t then known = true end end
    if not known then
      local when = t
      if when < item.t then when, item.t = item.t, when end
      item.u[#item.u + 1] = when
      table.sort(item.u)
      while #item.u > MAX_PUSH_TIMES do table.remove(item.u, 1) end -- keep the most recent
    end
    if #item.u == 0 then item.u = nil end
  else
    -- A redelivered build keeps its first event time: the join already judged it.
    item.g = recent_tags(item.g)
  end
  item.x = math.max(tonumber(item.x) or 0, expiry)
else
  -- A new item meeting items of the other side: its text as stored when matched (as it nearly
  -- always is), decoded for the join, so that the members are put in braces once.
  matched_text_new = new_text(true)
  item = cjson.decode(matched_text_new)
  item.k = nil
end

for i = 1, #others, 2 do
  local o = cjson.decode(others[i + 1])
  if push then
    local at = o.x >= arrival and nearest_push(item, o)
    if at then
      local was = o.k
      join(field, item, at, others[i], o)
      if not was then redis.call('HSET', other, others[i], matched_text(others[i + 1], o)) end
    end
  else
    local recut = type(o.g) == 'table' and #o.g > MAX_TAGS
    -- (a push stored before the bound existed, or under a larger one)
    if recut then o.g = recent_tags(o.g) end
    local at = o.x >= arrival and nearest_push(o, item)
    if at then
      local was = o.k
      join(others[i], o, at, field, item)
      if not was then
        redis.call('HSET', other, others[i], matched_text(others[i + 1], o, recut))
      end
    end
  end
end

park(raw and L.store(item) or (item.k and matched_text_new) or new_text(false), item.x)

-- An edge was confirmed: findings that were waiting for one are routed now (the finding came
-- first; findings.lua routes when the mapping came first).
local routed = 0
if edges > 0 and FINDINGS_TTL_MS then
  if redis.call('EXISTS', base .. 'fs:' .. digest) == 1 then
    routed = findings_lib(L).route_findings(base, digest, MIN_RANK, FINDINGS_TTL_MS,
      MAX_FINDINGS)
  end
end
-- evicted is at most a hash's items over its bound (the limits cap bounds at 100000); clamped to
-- its 21 bits all the same, so a hash grown before a bound was lowered cannot spill into edges.
return ((raw and edges == 0) and 2 or 0) + routed * 8 + math.min(evicted, 2097151) * 32
  + edges * 67108864

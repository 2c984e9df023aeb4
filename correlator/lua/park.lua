-- park.lua (after lib.lua): park one normalized event, probe the other side, emit edges;
-- atomically, so redeliveries and concurrent instances can never produce an edge twice.
--
-- KEYS (all of one shard, so one hash slot):
--   1 <p>:{s}:r:<digest>  hash  registry location -> parked push (internal JSON)
--   2 <p>:{s}:b:<digest>  hash  run key -> parked build (internal JSON)
--   3 <p>:{s}:m:<digest>  hash  edge id -> mapping (the record's "data", contract JSON)
--   4 <p>:{s}:d:<digest>  hash  registry location -> delete record
--   5 <p>:{s}:due         zset  "r|<digest>|<location>" / "b|<digest>|<run key>" -> expiry ms
--   6 <p>:{s}:out         stream of output records (contract)
--   7 <p>:{s}:stats       hash  r / b -> number of parked items
-- ARGV:
--   1 event JSON (adapters/dm_event.c dm_event_to_json)
--   2 window ms, 3 grace ms, 4 max clock skew ms, 5 mapping ttl ms, 6 stream maxlen
-- Returns {edges emitted, duplicate (0/1: seen before, nothing new), event time replaced (0/1),
--          deletes recorded}.

local ev = cjson.decode(ARGV[1])
local window = tonumber(ARGV[2])
local retention = window + tonumber(ARGV[3])
local max_skew = tonumber(ARGV[4])
local mapping_ttl = tonumber(ARGV[5])
local maxlen = ARGV[6]
local digest = ev.digest

local skewed = 0
local t = tonumber(ev.t) or 0
if t <= 0 then
  t = now -- no event time given (a build without built_at): its arrival
elseif math.abs(t - now) > max_skew then
  t = now
  skewed = 1
end

local function add_tags(list, more)
  local seen = {}
  for _, v in ipairs(list) do seen[v] = true end
  local added = false
  if type(more) == 'table' then
    for _, v in ipairs(more) do
      if not seen[v] then list[#list + 1] = v; seen[v] = true; added = true end
    end
  end
  return added
end

-- The contract's mapping record (DESIGN §6.4 "data"); stored as is and sent as is.
local function enc_mapping(d)
  return '{"digest":' .. jstr(d.digest) .. ',"relation":' .. jstr(d.relation)
    .. (is_str(d.index) and (',"index":' .. jstr(d.index)) or '')
    .. ',"image":' .. enc_image(d.image) .. ',"build":' .. enc_build(d.build)
    .. ',"skew_ms":' .. string.format('%d', d.skew_ms) .. '}'
end

-- Inclusive window; a location pushed several times (extra tags) joins if any push is in it.
local function overlaps(p, b)
  return b.t >= p.tmin - window and b.t <= p.tmax + window
end

local edges = 0

-- Join parked push p (location loc) with parked build b (run key rk): one edge per identity.
-- Marks both sides matched; the caller stores them.
local function join(loc, p, rk, b)
  p.matched = true
  b.matched = true
  local id = redis.sha1hex(loc .. '@' .. digest .. '|' .. rk)
  local cur = redis.call('HGET', KEYS[3], id)
  if cur then
    local m = cjson.decode(cur)
    if type(m.image.tags) ~= 'table' then m.image.tags = {} end
    if add_tags(m.image.tags, p.tags) then
      redis.call('HSET', KEYS[3], id, enc_mapping(m))
    end
    return
  end
  local bb = b.build
  bb.built_at = iso(b.t)
  local data = enc_mapping({
    digest = digest, relation = b.relation, index = b.index,
    image = { registry = p.registry, repository = p.repository, tags = p.tags,
              source = p.source, event_id = p.event_id, pushed_at = iso(p.tmin),
              media_type = p.media_type },
    build = bb, skew_ms = p.tmin - b.t })
  redis.call('HSET', KEYS[3], id, data)
  redis.call('PEXPIRE', KEYS[3], mapping_ttl)
  emit(KEYS[6], maxlen, 'mapping.confirmed.v1', id, digest, data)
  edges = edges + 1
end

-- Store a parked item and (re)schedule its expiry for the sweeper.
local function park(key, side, field, item, is_new)
  redis.call('HSET', key, field, cjson.encode(item))
  redis.call('PEXPIRE', key, keep_ms(retention))
  redis.call('ZADD', KEYS[5], item.exp, side .. '|' .. digest .. '|' .. field)
  if is_new then redis.call('HINCRBY', KEYS[7], side, 1) end
end

if ev.side == 'registry' then
  local loc = ev.registry .. '/' .. ev.repository
  if ev.action == 'delete' then
    -- A deleted untagged manifest is no longer a finding: drop its pending report.
    local raw = redis.call('HGET', KEYS[1], loc)
    if raw then
      local p = cjson.decode(raw)
      if not p.matched and (type(p.tags) ~= 'table' or #p.tags == 0) then
        redis.call('HDEL', KEYS[1], loc)
        redis.call('ZREM', KEYS[5], 'r|' .. digest .. '|' .. loc)
        redis.call('HINCRBY', KEYS[7], 'r', -1)
      end
    end
    local id = redis.sha1hex('deleted|' .. loc .. '@' .. digest)
    local data = '{"digest":' .. jstr(digest) .. ',"image":{"registry":' .. jstr(ev.registry)
      .. ',"repository":' .. jstr(ev.repository) .. ',"source":' .. jstr(ev.source)
      .. ',"event_id":' .. jstr(ev.event_id) .. ',"deleted_at":' .. jstr(iso(t)) .. '}}'
    if redis.call('HSETNX', KEYS[4], loc, data) == 1 then
      redis.call('PEXPIRE', KEYS[4], mapping_ttl)
      emit(KEYS[6], maxlen, 'image.deleted.v1', id, digest, data)
      return { 0, 0, skewed, 1 }
    end
    return { 0, 1, skewed, 0 }
  end

  local p
  local raw = redis.call('HGET', KEYS[1], loc)
  if raw then
    p = cjson.decode(raw)
    if type(p.tags) ~= 'table' then p.tags = {} end
    add_tags(p.tags, ev.tags)
    if t < p.tmin then p.tmin = t end
    if t > p.tmax then p.tmax = t end
  else
    p = { registry = ev.registry, repository = ev.repository, tags = ev.tags or {},
          source = ev.source, event_id = ev.event_id, media_type = ev.media_type,
          tmin = t, tmax = t, arrived = now }
  end
  p.exp = now + retention

  local builds = redis.call('HGETALL', KEYS[2])
  for i = 1, #builds, 2 do
    local b = cjson.decode(builds[i + 1])
    if b.exp >= now and overlaps(p, b) then
      local was = b.matched
      join(loc, p, builds[i], b)
      if not was then redis.call('HSET', KEYS[2], builds[i], cjson.encode(b)) end
    end
  end
  park(KEYS[1], 'r', loc, p, raw == false)
  return { edges, (raw and edges == 0) and 1 or 0, skewed, 0 }
end

-- build side
local bi = ev.build
local rk = bi.provider .. '/' .. bi.run_id .. '/' .. bi.run_attempt
local b
local raw = redis.call('HGET', KEYS[2], rk)
if raw then
  -- A redelivered build keeps its first event time: the join already judged it.
  b = cjson.decode(raw)
else
  b = { build = bi, t = t, relation = ev.relation, index = ev.index, name = ev.name,
        tags = ev.tags, arrived = now }
end
b.exp = now + retention

local pushes = redis.call('HGETALL', KEYS[1])
for i = 1, #pushes, 2 do
  local p = cjson.decode(pushes[i + 1])
  if p.exp >= now and overlaps(p, b) then
    local was = p.matched
    join(pushes[i], p, rk, b)
    if not was then redis.call('HSET', KEYS[1], pushes[i], cjson.encode(p)) end
  end
end
park(KEYS[2], 'b', rk, b, raw == false)
return { edges, (raw and edges == 0) and 1 or 0, skewed, 0 }

-- park.lua: park one normalized event, probe the other side, emit edges; atomically.
--
-- KEYS (all of one shard, so one hash slot):
--   1 <p>:{s}:r:<digest>  hash  registry location -> parked push (internal JSON)
--   2 <p>:{s}:b:<digest>  hash  run key -> parked build (internal JSON)
--   3 <p>:{s}:m:<digest>  hash  edge id -> mapping (the CloudEvent "data", contract JSON)
--   4 <p>:{s}:d:<digest>  hash  registry location -> delete record
--   5 <p>:{s}:due         zset  parked item -> expiry (ms), for the sweeper
--   6 <p>:{s}:out         stream of output records (contract)
-- ARGV:
--   1 event JSON (adapters/dm_event.c dm_event_to_json)
--   2 window ms, 3 grace ms, 4 max clock skew ms, 5 mapping ttl ms, 6 stream maxlen
-- Returns {edges emitted, duplicate (0/1: seen before, nothing new), event time replaced (0/1),
--          deletes recorded}.
--
-- Time is Redis's own clock (TIME), so every instance judges arrival and expiry alike.

local ev = cjson.decode(ARGV[1])
local window = tonumber(ARGV[2])
local retention = window + tonumber(ARGV[3])
local max_skew = tonumber(ARGV[4])
local mapping_ttl = tonumber(ARGV[5])
local maxlen = ARGV[6]

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local digest = ev.digest
local skewed = 0
local t = tonumber(ev.t) or 0
if t <= 0 then
  t = now
elseif math.abs(t - now) > max_skew then
  t = now
  skewed = 1
end

-- JSON output with a fixed key order and real arrays (cjson would turn {} into an object).
-- cjson escapes '/' as '\/'; undo it (a literal backslash is always escaped as '\\', so the
-- pair backslash-slash can only come from that escape).
local function jstr(v) return (string.gsub(cjson.encode(tostring(v)), '\\/', '/')) end
local function is_str(v) return type(v) == 'string' end
local function jarr(list)
  local out = {}
  if type(list) == 'table' then
    for _, v in ipairs(list) do out[#out + 1] = jstr(v) end
  end
  return '[' .. table.concat(out, ',') .. ']'
end

local function iso(ms)
  local secs = math.floor(ms / 1000)
  local msr = ms - secs * 1000
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, msr)
end

local BUILD_KEYS = { 'provider', 'repository', 'repository_url', 'workflow', 'workflow_ref',
  'run_id', 'run_attempt', 'run_url', 'commit', 'ref', 'actor', 'built_at' }

local function enc_image(img)
  return '{"registry":' .. jstr(img.registry) .. ',"repository":' .. jstr(img.repository)
    .. ',"tags":' .. jarr(img.tags) .. ',"source":' .. jstr(img.source)
    .. ',"event_id":' .. jstr(img.event_id) .. ',"pushed_at":' .. jstr(img.pushed_at)
    .. (is_str(img.media_type) and (',"media_type":' .. jstr(img.media_type)) or '') .. '}'
end

local function enc_build(b)
  local parts = {}
  for _, k in ipairs(BUILD_KEYS) do
    if is_str(b[k]) then parts[#parts + 1] = '"' .. k .. '":' .. jstr(b[k]) end
  end
  parts[#parts + 1] = '"verified":' .. (b.verified == true and 'true' or 'false')
  if is_str(b.issuer) then parts[#parts + 1] = '"issuer":' .. jstr(b.issuer) end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- The contract's mapping record (DESIGN §6.4 "data"); stored as is and sent as is.
local function enc_mapping(d)
  return '{"digest":' .. jstr(d.digest) .. ',"relation":' .. jstr(d.relation)
    .. (is_str(d.index) and (',"index":' .. jstr(d.index)) or '')
    .. ',"image":' .. enc_image(d.image) .. ',"build":' .. enc_build(d.build)
    .. ',"skew_ms":' .. string.format('%d', d.skew_ms) .. '}'
end

local function emit(kind, id, data)
  local doc = '{"specversion":"1.0","id":' .. jstr(id) .. ',"source":"digestmap","time":'
    .. jstr(iso(now)) .. ',"type":"dev.digestmap.' .. kind .. '","subject":' .. jstr(digest)
    .. ',"datacontenttype":"application/json","data":' .. data .. '}'
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', maxlen, '*', 'type', 'dev.digestmap.' .. kind,
    'digest', digest, 'event', doc)
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

local function overlaps(p, b)
  -- A location may have been pushed several times (extra tags); any of them in the window joins.
  return b.t >= p.tmin - window and b.t <= p.tmax + window
end

local edges = 0

-- Join parked push p (at location loc) with parked build b (run key rk): one edge per identity.
local function join(loc, p, rk, b)
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
  emit('mapping.confirmed.v1', id, data)
  edges = edges + 1
end

if ev.side == 'registry' then
  local loc = ev.registry .. '/' .. ev.repository
  if ev.action == 'delete' then
    local id = redis.sha1hex('deleted|' .. loc .. '@' .. digest)
    local data = '{"digest":' .. jstr(digest) .. ',"image":{"registry":' .. jstr(ev.registry)
      .. ',"repository":' .. jstr(ev.repository) .. ',"source":' .. jstr(ev.source)
      .. ',"event_id":' .. jstr(ev.event_id) .. ',"deleted_at":' .. jstr(iso(t)) .. '}}'
    if redis.call('HSETNX', KEYS[4], loc, data) == 1 then
      redis.call('PEXPIRE', KEYS[4], mapping_ttl)
      emit('image.deleted.v1', id, data)
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
  redis.call('HSET', KEYS[1], loc, cjson.encode(p))
  redis.call('PEXPIRE', KEYS[1], retention)
  redis.call('ZADD', KEYS[5], p.exp, 'r|' .. digest .. '|' .. loc)

  local builds = redis.call('HGETALL', KEYS[2])
  for i = 1, #builds, 2 do
    local b = cjson.decode(builds[i + 1])
    if b.exp >= now and overlaps(p, b) then join(loc, p, builds[i], b) end
  end
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
redis.call('HSET', KEYS[2], rk, cjson.encode(b))
redis.call('PEXPIRE', KEYS[2], retention)
redis.call('ZADD', KEYS[5], b.exp, 'b|' .. digest .. '|' .. rk)

local pushes = redis.call('HGETALL', KEYS[1])
for i = 1, #pushes, 2 do
  local p = cjson.decode(pushes[i + 1])
  if p.exp >= now and overlaps(p, b) then join(pushes[i], p, rk, b) end
end
return { edges, (raw and edges == 0) and 1 or 0, skewed, 0 }

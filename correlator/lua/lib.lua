-- lib.lua: the stored form and the record encoders, prepended by the build (after clock.lua,
-- whose "now" it uses) to the scripts listed in correlator/CMakeLists.txt DM_LUA_WITH_LIB.

-- Output JSON is written by hand for a fixed key order and real arrays (cjson turns an empty
-- table into {}). cjson escapes '/' as '\/'; undo it: a literal backslash is always escaped as
-- '\\', so the pair backslash-slash can only come from that escape.
local function jstr(v) return (string.gsub(cjson.encode(tostring(v)), '\\/', '/')) end
local function is_str(v) return type(v) == 'string' end
local function jarr(list)
  local out = {}
  if type(list) == 'table' then
    for _, v in ipairs(list) do out[#out + 1] = jstr(v) end
  end
  return '[' .. table.concat(out, ',') .. ']'
end

-- ms since the epoch -> "YYYY-MM-DDTHH:MM:SS.mmmZ" (Lua in Redis has no os.date).
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

-- Parked items are stored compactly, because Redis keeps them in memory for the whole window
-- (a typical ACR push must stay under 512 bytes, key and schedule included):
--   push  (field "<registry>/<repository>"): s source, e event id, g tags, t first event time,
--         u later event times (at most 8), x expiry, m media type (coded), k matched
--   build (field "<provider>/<run id>/<attempt>"): b identity, t event time, x expiry,
--         r relation ("p" = platform-manifest), i index digest, n name, g tags, k matched
local MEDIA = { oi = 'application/vnd.oci.image.index.v1+json',
                om = 'application/vnd.oci.image.manifest.v1+json',
                dl = 'application/vnd.docker.distribution.manifest.list.v2+json',
                dm = 'application/vnd.docker.distribution.manifest.v2+json' }
local MEDIA_CODE = {}
for k, v in pairs(MEDIA) do MEDIA_CODE[v] = k end
local function media_code(mt) return is_str(mt) and (MEDIA_CODE[mt] or mt) or nil end
local function media_type(code) return is_str(code) and (MEDIA[code] or code) or nil end

-- cjson for the stored form too, without its '\/' escapes (they only cost memory).
local function store(t) return (string.gsub(cjson.encode(t), '\\/', '/')) end

-- Registry location "<registry>/<repository>" -> registry, repository.
local function split_loc(loc) return string.match(loc, '^([^/]*)/(.*)$') end

local function tags_of(x) return type(x.g) == 'table' and x.g or {} end

-- The record's "image" object, from its decoded form (fixed key order).
local function enc_image_data(img)
  return '{"registry":' .. jstr(img.registry) .. ',"repository":' .. jstr(img.repository)
    .. ',"tags":' .. jarr(img.tags) .. ',"source":' .. jstr(img.source)
    .. ',"event_id":' .. jstr(img.event_id) .. ',"pushed_at":' .. jstr(img.pushed_at)
    .. (is_str(img.media_type) and (',"media_type":' .. jstr(img.media_type)) or '') .. '}'
end

-- A parked push (stored form) at location loc -> the record's "image" object; pushed_at is
-- the push time to report (default: the first push).
local function enc_image(loc, p, pushed_at)
  local registry, repository = split_loc(loc)
  return enc_image_data({ registry = registry, repository = repository, tags = tags_of(p),
                          source = p.s, event_id = p.e, pushed_at = iso(pushed_at or p.t),
                          media_type = media_type(p.m) })
end

-- A build identity (with built_at filled in) -> the record's "build" object.
local function enc_build(b)
  local parts = {}
  for _, k in ipairs(BUILD_KEYS) do
    if is_str(b[k]) then parts[#parts + 1] = '"' .. k .. '":' .. jstr(b[k]) end
  end
  parts[#parts + 1] = '"verified":' .. (b.verified == true and 'true' or 'false')
  if is_str(b.issuer) then parts[#parts + 1] = '"issuer":' .. jstr(b.issuer) end
  if type(b.verified_fields) == 'table' and #b.verified_fields > 0 then
    parts[#parts + 1] = '"verified_fields":' .. jarr(b.verified_fields)
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- Append one CloudEvents record to the shard's output stream. No MAXLEN here: trimming is
-- trim.lua's (dm_trim), which spares entries a protected consumer group has not read yet.
local function emit(out_key, kind, id, digest, data)
  local doc = '{"specversion":"1.0","id":' .. jstr(id) .. ',"source":"digestmap","time":'
    .. jstr(iso(now)) .. ',"type":"dev.digestmap.' .. kind .. '","subject":' .. jstr(digest)
    .. ',"datacontenttype":"application/json","data":' .. data .. '}'
  redis.call('XADD', out_key, '*', 'type', 'dev.digestmap.' .. kind,
    'digest', digest, 'event', doc)
end

-- A stored document (a mapping, a delete record) as an element of an HTTP answer: the text
-- itself if it is a JSON object or array, nil if not (only a foreign writer could leave that).
local function stored_doc(text)
  local ok, v = pcall(cjson.decode, text)
  if ok and type(v) == 'table' then return text, v end
  return nil
end

-- The HTTP answers (query.lua, mappings.lua) keep the bytes they had when C wrote them with
-- jansson: control characters as \u00XX with upper-case hex digits, DEL (0x7f) and '/' as they
-- are, where cjson writes lower-case digits and escapes both. A literal backslash is always
-- escaped, so every match below is one whole escape.
local function answer_text(text)
  return (string.gsub(text, '\\(.)(%x?%x?%x?%x?)', function(c, hex)
    if c == '/' then return '/' .. hex end
    if c ~= 'u' or #hex < 4 then return nil end
    if hex == '007f' then return '\127' end
    return '\\u' .. string.upper(hex)
  end))
end

-- Parked hashes outlive their items' expiry so the sweeper can still read an expired item and
-- report it; the sweeper deletes each field it reports. The slack only matters while no
-- sweeper runs at all.
local function keep_ms(retention) return 2 * retention + 3600000 end

-- Untagged single-platform manifests are normally explained by their index.
local function is_untagged_manifest(p)
  if #tags_of(p) > 0 then return false end
  local mt = media_type(p.m) or ''
  return not (string.find(mt, 'index', 1, true) or string.find(mt, 'manifest.list', 1, true))
end

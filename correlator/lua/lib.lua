-- lib.lua: the stored form and the record encoders, prepended by the build to the scripts listed
-- in correlator/CMakeLists.txt DM_LUA_WITH_LIB.
--
-- Its top level only defines lib and findings_lib: a script takes the functions from
-- `local L = lib(now)` (and findings_lib(L)) on the paths that use them. now (ms) is the time
-- the records it writes carry: Redis's clock (clock.lua) in every script but park.lua, which
-- takes digestmapd's (park.lua ARGV 5 and 6). Lua 5.1 makes every
-- function and table a script defines again on every call, and for a short call that was most
-- of its cost to Redis: park.lua's common call uses none of this file.

-- The record and stored-form helpers; now: the time of the call in ms (L.now).
local function lib(now)
  -- Output JSON is written by hand for a fixed key order and real arrays (cjson turns an empty
  -- table into {}). cjson escapes '/' as '\/'; undo it: a literal backslash is always escaped as
  -- '\\', so the pair backslash-slash can only come from that escape. (cjson, in C, is far
  -- cheaper than any Lua pattern that would look for what needs escaping.)
  local function jstr(v)
    local text = cjson.encode(tostring(v))
    if string.find(text, '\\/', 1, true) then text = (string.gsub(text, '\\/', '/')) end
    return text
  end
  local function is_str(v) return type(v) == 'string' end
  local function jarr(list)
    if type(list) ~= 'table' or #list == 0 then return '[]' end
    if #list == 1 then return '[' .. jstr(list[1]) .. ']' end
    local out = {}
    for _, v in ipairs(list) do out[#out + 1] = jstr(v) end
    return '[' .. table.concat(out, ',') .. ']'
  end

  -- ms since the epoch -> "YYYY-MM-DDTHH:MM:SS.mmmZ" (Lua in Redis has no os.date). The date
  -- of the last day met is kept: the times of one call (now, a push, a build within the window)
  -- are nearly always of one day. Floors are written with % (x - x % n is n * floor(x / n)): an
  -- operator, where math.floor is a call.
  local day_start, day_text
  local function iso(ms)
    local msr = ms % 1000
    local secs = (ms - msr) / 1000
    local rem = secs % 86400
    if secs - rem ~= day_start then
      day_start = secs - rem
      local z = day_start / 86400 + 719468
      local doe = z % 146097
      local era = (z - doe) / 146097
      local yoe = doe - (doe - doe % 1460) / 1460 + (doe - doe % 36524) / 36524
        - (doe - doe % 146096) / 146096
      yoe = (yoe - yoe % 365) / 365
      local doy = doe - (365 * yoe + (yoe - yoe % 4) / 4 - (yoe - yoe % 100) / 100)
      local mp = 5 * doy + 2
      mp = (mp - mp % 153) / 153
      local d = 153 * mp + 2
      d = doy - (d - d % 5) / 5 + 1
      local m = mp < 10 and mp + 3 or mp - 9
      day_text = string.format('%04d-%02d-%02dT', yoe + era * 400 + (m <= 2 and 1 or 0), m, d)
    end
    local sec = rem % 60
    return day_text .. string.format('%02d:%02d:%02d.%03dZ', (rem - rem % 3600) / 3600,
      (rem - sec) / 60 % 60, sec, msr)
  end

  -- Parked items are stored compactly, because Redis keeps them in memory for the whole window
  -- (a typical ACR push must stay under 512 bytes, key and schedule included), as JSON objects
  -- whose members come in any order:
  --   push  (field "<registry>/<repository>"): s source, e event id, g tags, t first event time,
  --         u later event times (at most 8), x expiry, m media type (coded), k matched
  --   build (field "<provider>/<run id>/<attempt>"): f and v, the record's "build" object (the
  --         identity, README.md "Output records") as member text before and after its
  --         "built_at" (f: provider … actor, v: verified, issuer, verified_fields; written by
  --         adapters/dm_event.c, so that an edge splices them in without decoding the identity),
  --         xr its code repository (a query index's name: the run's is its field without the
  --         attempt), t event time, x expiry, r relation ("p" = platform-manifest), i index
  --         digest, n name, g tags, k matched. A build parked by an earlier version has b, the
  --         identity as an object, instead of f, v and xr: every reader takes both
  --         (build_object below).
  -- The media type codes (adapters/dm_event.c writes them; no table here: a table is built on
  -- every call of every script this file is prepended to).
  local function media_type(code)
    if code == 'oi' then return 'application/vnd.oci.image.index.v1+json' end
    if code == 'om' then return 'application/vnd.oci.image.manifest.v1+json' end
    if code == 'dl' then return 'application/vnd.docker.distribution.manifest.list.v2+json' end
    if code == 'dm' then return 'application/vnd.docker.distribution.manifest.v2+json' end
    return is_str(code) and code or nil
  end
  -- The same as JSON text (what jstr would make of it: the codes' types need no escaping, and
  -- jstr's encode and '\/' undoing cost an edge about 4 k).
  local function media_type_json(code)
    if code == 'oi' then return '"application/vnd.oci.image.index.v1+json"' end
    if code == 'om' then return '"application/vnd.oci.image.manifest.v1+json"' end
    if code == 'dl' then return '"application/vnd.docker.distribution.manifest.list.v2+json"' end
    if code == 'dm' then return '"application/vnd.docker.distribution.manifest.v2+json"' end
    return is_str(code) and jstr(code) or nil
  end

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
  -- the push time to report (default: the first push). What enc_image_data writes, without
  -- the table.
  local function enc_image(loc, p, pushed_at)
    local registry, repository = split_loc(loc)
    local mt = media_type_json(p.m)
    return '{"registry":' .. jstr(registry) .. ',"repository":' .. jstr(repository)
      .. ',"tags":' .. jarr(tags_of(p)) .. ',"source":' .. jstr(p.s)
      .. ',"event_id":' .. jstr(p.e) .. ',"pushed_at":"' .. iso(pushed_at or p.t) .. '"'
      .. (mt and (',"media_type":' .. mt) or '') .. '}'
  end

  -- A build identity (with built_at filled in) -> the record's "build" object.
  local function enc_build(b)
    local parts = {}
    for _, k in ipairs({ 'provider', 'repository', 'repository_url', 'workflow', 'workflow_ref',
        'run_id', 'run_attempt', 'run_url', 'commit', 'ref', 'actor', 'built_at' }) do
      if is_str(b[k]) then parts[#parts + 1] = '"' .. k .. '":' .. jstr(b[k]) end
    end
    parts[#parts + 1] = '"verified":' .. (b.verified == true and 'true' or 'false')
    if is_str(b.issuer) then parts[#parts + 1] = '"issuer":' .. jstr(b.issuer) end
    if type(b.verified_fields) == 'table' and #b.verified_fields > 0 then
      parts[#parts + 1] = '"verified_fields":' .. jarr(b.verified_fields)
    end
    return '{' .. table.concat(parts, ',') .. '}'
  end

  -- A parked build (stored form) -> the record's "build" object, with "built_at" (iso's text:
  -- nothing to escape) when given; then its code repository and "<provider>/<run id>", the names of its query
  -- indexes (park.lua), nil when it has none.
  local function build_object(b, built_at)
    local f, v = b.f, b.v
    if is_str(f) and is_str(v) then
      if built_at then
        return '{' .. f .. (f ~= '' and ',"built_at":"' or '"built_at":"') .. built_at
          .. (v ~= '' and '",' or '"') .. v .. '}', b.xr
      end
      return '{' .. f .. ((f ~= '' and v ~= '') and ',' or '') .. v .. '}', b.xr
    end
    local bb = type(b.b) == 'table' and b.b or {}
    bb.built_at = built_at -- an earlier park.lua stored one inside the identity: not used
    local run = is_str(bb.provider) and is_str(bb.run_id) and bb.run_id ~= ''
      and (bb.provider .. '/' .. bb.run_id) or nil
    return enc_build(bb), bb.repository, run
  end

  -- Append one CloudEvents record to the shard's output stream. No MAXLEN here: trimming is
  -- trim.lua's (dm_trim), which spares entries a protected consumer group has not read yet.
  -- id (a sha1hex) and digest (validated) have nothing to escape.
  local now_iso -- iso(now), made once
  local function emit(out_key, kind, id, digest, data)
    now_iso = now_iso or iso(now)
    local doc = '{"specversion":"1.0","id":"' .. id .. '","source":"digestmap","time":"'
      .. now_iso .. '","type":"dev.digestmap.' .. kind .. '","subject":"' .. digest
      .. '","datacontenttype":"application/json","data":' .. data .. '}'
    -- The id again as a field of its own: a webhook sink sends it as Idempotency-Key without
    -- decoding the document (docs/sink-connections.md).
    redis.call('XADD', out_key, '*', 'type', 'dev.digestmap.' .. kind,
      'digest', digest, 'event', doc, 'id', id)
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

  -- Untagged single-platform manifests are normally explained by their index.
  local function is_untagged_manifest(p)
    if #tags_of(p) > 0 then return false end
    local mt = media_type(p.m) or ''
    return not (string.find(mt, 'index', 1, true) or string.find(mt, 'manifest.list', 1, true))
  end

  return {
    now = now, jstr = jstr, is_str = is_str, jarr = jarr, iso = iso, media_type = media_type,
    store = store, split_loc = split_loc, tags_of = tags_of, enc_image_data = enc_image_data,
    enc_image = enc_image, enc_build = enc_build, build_object = build_object, emit = emit,
    stored_doc = stored_doc, answer_text = answer_text,
    is_untagged_manifest = is_untagged_manifest,
  }end

-- The findings helpers (L: what lib() returned).
local function findings_lib(L)
  local now = L.now
  local jstr, is_str, enc_image_data, enc_build, emit, stored_doc =
    L.jstr, L.is_str, L.enc_image_data, L.enc_build, L.emit, L.stored_doc

  -- Findings (docs/findings.md): the stored form is what dm_finding_report_to_json gives per
  -- finding, hash <p>:{s}:f:<digest> field <scanner> -> JSON array of
  -- {"id","package","severity","installed"?,"fixed"?,"status"?,"path"?}; field
  -- "<scanner>#counts" -> {"critical":n,…} (counts-only scanners). Severities by rank, most
  -- severe first; a word the parsers never write ranks as unknown.
  local SEVERITIES = { 'critical', 'high', 'medium', 'low', 'unknown' }
  local SEV_RANK = { critical = 0, high = 1, medium = 2, low = 3, unknown = 4 }
  local function sev_rank(s) return SEV_RANK[s] or 4 end
  local function finding_key(f) return f.id .. '|' .. f.package end

  -- Most severe first, then id and package (the order the parsers keep).
  local function sort_findings(list)
    table.sort(list, function(a, b)
      local ra, rb = sev_rank(a.severity), sev_rank(b.severity)
      if ra ~= rb then return ra < rb end
      if a.id ~= b.id then return a.id < b.id end
      return a.package < b.package
    end)
    return list
  end

  -- A scanner field's findings (decoded), or {} for a value that is not a list.
  local function scanner_findings(text)
    local ok, list = pcall(cjson.decode, text)
    if not ok or type(list) ~= 'table' then return {} end
    local out = {}
    for _, f in ipairs(list) do
      if type(f) == 'table' and is_str(f.id) and is_str(f.package) then out[#out + 1] = f end
    end
    return out
  end

  -- The current findings of a digest from its hash f (an HGETALL reply): "<id>|<package>" ->
  -- the finding at the highest severity a scanner gives it, .scanner naming that scanner (the
  -- first by name on a tie, so every instance picks the same).
  local function findings_union(all)
    local u = {}
    for i = 1, #all, 2 do
      local field = all[i]
      if not string.find(field, '#', 1, true) then
        for _, f in ipairs(scanner_findings(all[i + 1])) do
          local k = finding_key(f)
          local cur = u[k]
          local r, rc = sev_rank(f.severity), cur and sev_rank(cur.severity)
          if not cur or r < rc or (r == rc and field < cur.scanner) then
            u[k] = { id = f.id, package = f.package, severity = SEVERITIES[r + 1],
                     installed = f.installed, fixed = f.fixed, status = f.status, path = f.path,
                     scanner = field }
          end
        end
      end
    end
    return u
  end

  -- One finding of a finding.routed record's findings.new (fixed key order).
  local function enc_finding(f)
    local out = '{"id":' .. jstr(f.id) .. ',"package":' .. jstr(f.package)
      .. ',"severity":' .. jstr(f.severity)
    for _, k in ipairs({ 'installed', 'fixed', 'status', 'path' }) do
      if is_str(f[k]) then out = out .. ',"' .. k .. '":' .. jstr(f[k]) end
    end
    return out .. ',"scanner":' .. jstr(f.scanner) .. '}'
  end

  -- At most this many mappings in a finding.routed record (newest first).
  local ROUTED_MAPPINGS = 20
  -- At most this many workloads in a finding.routed record (by name), as in GET /v1/images.
  local ROUTED_WORKLOADS = 100

  -- fr:<digest> keeps at most this many routed findings per max finding of a digest
  -- (limits.max_findings_per_digest): a digest whose scanners keep reporting fresh ids would
  -- otherwise grow it without end.
  local ROUTED_KEEP_FACTOR = 4

  -- Route the findings of `digest` (README.md "Output records", docs/findings.md): when the
  -- digest has a confirmed mapping and current findings at or above severity rank min_rank that
  -- were never routed for it, append one dev.digestmap.finding.routed.v1 record to the shard's
  -- stream carrying them in findings.new, and remember them in fr:<digest> (kept ttl ms after
  -- the last routing) so no (id, package) is routed twice, even after it left and came back.
  -- fr is a sorted set "<id>|<package>" -> when it was last routed or seen routable (ms): only
  -- the candidates are looked up (ZMSCORE), never the whole set, and when it routes, every
  -- current candidate is stamped now and the oldest beyond ROUTED_KEEP_FACTOR * max_findings
  -- are dropped. The current candidates are at most max_findings, so they are never the ones
  -- dropped; a finding dropped that way (gone from the reports for a long churn of newer ids)
  -- would route again if it came back. max_findings nil or 0: no trim.
  -- base is the shard's key prefix "<p>:{s}:"; every key read is the digest's, in that slot.
  -- Called by findings.lua after every change of the findings and by park.lua after it confirmed
  -- an edge: the later of the two arrivals routes, and since both run atomically on the shard,
  -- two instances racing append one record per trigger. Returns records appended (0/1) and the
  -- findings they carried.
  local function route_findings(base, digest, min_rank, ttl, max_findings)
    local mkey = base .. 'm:' .. digest
    if redis.call('EXISTS', mkey) == 0 then return 0, 0 end
    local summary = redis.call('GET', base .. 'fs:' .. digest)
    if not summary then return 0, 0 end
    local frkey = base .. 'fr:' .. digest
    if redis.call('TYPE', frkey).ok == 'set' then
      -- Written as a plain set by an earlier version: read once, kept as the oldest entries.
      local old = redis.call('SMEMBERS', frkey)
      redis.call('DEL', frkey)
      for i = 1, #old, 500 do
        local args = {}
        for j = i, math.min(i + 499, #old) do
          args[#args + 1] = 0
          args[#args + 1] = old[j]
        end
        redis.call('ZADD', frkey, unpack(args))
      end
    end
    local cand = {}
    for _, f in pairs(findings_union(redis.call('HGETALL', base .. 'f:' .. digest))) do
      if sev_rank(f.severity) <= min_rank then cand[#cand + 1] = f end
    end
    if #cand == 0 then return 0, 0 end
    sort_findings(cand)
    local ckeys = {}
    for i, f in ipairs(cand) do ckeys[i] = finding_key(f) end
    local new = {}
    for i = 1, #ckeys, 1000 do -- unpack has a stack limit
      local scores = redis.call('ZMSCORE', frkey, unpack(ckeys, i, math.min(i + 999, #ckeys)))
      for j = 1, #scores do
        if not scores[j] then new[#new + 1] = cand[i + j - 1] end
      end
    end
    if #new == 0 then return 0, 0 end
    -- The mappings, newest first: an edge is confirmed when its later side arrives, so its
    -- time is the later of pushed_at and built_at (ISO 8601 in UTC: text order is time order).
    local all = redis.call('HGETALL', mkey)
    local maps = {}
    for i = 1, #all, 2 do
      local text, m = stored_doc(all[i + 1])
      if text and type(m.image) == 'table' and type(m.build) == 'table' then
        local p, b = tostring(m.image.pushed_at or ''), tostring(m.build.built_at or '')
        maps[#maps + 1] = { at = p > b and p or b, id = all[i], text = text, m = m }
      end
    end
    if #maps == 0 then return 0, 0 end
    table.sort(maps, function(a, b)
      if a.at ~= b.at then return a.at > b.at end
      return a.id < b.id
    end)
    local keys, encoded = {}, {}
    for i, f in ipairs(new) do
      keys[i] = finding_key(f)
      encoded[i] = enc_finding(f)
    end
    for i = 1, #ckeys, 500 do
      local args = {}
      for j = i, math.min(i + 499, #ckeys) do
        args[#args + 1] = now
        args[#args + 1] = ckeys[j]
      end
      redis.call('ZADD', frkey, unpack(args))
    end
    if max_findings and max_findings > 0 then
      redis.call('ZREMRANGEBYRANK', frkey, 0, -(ROUTED_KEEP_FACTOR * max_findings) - 1)
    end
    redis.call('PEXPIRE', frkey, ttl)
    local texts = {}
    for i = 1, math.min(#maps, ROUTED_MAPPINGS) do texts[i] = maps[i].text end
    -- The workloads running the digest, as GET /v1/images lists them (docs/workloads.md): a
    -- w: entry counts only while its cluster's inventory (wc:<cluster>, same slot) still lists
    -- the workload (a cluster that stopped reporting fades out), its images come from that
    -- inventory entry (w: values no longer carry them), and at most ROUTED_WORKLOADS are listed.
    local wall = redis.call('HGETALL', base .. 'w:' .. digest)
    local wl = {}
    for i = 1, #wall, 2 do
      local c, rest = string.match(wall[i], '^([^/]+)/(.+)$')
      local inv = c and redis.call('HGET', base .. 'wc:' .. c, rest)
      local text = inv and stored_doc(wall[i + 1])
      if text then wl[#wl + 1] = { wall[i], text, inv } end
    end
    table.sort(wl, function(a, b) return a[1] < b[1] end)
    local wtexts = {}
    for i = 1, math.min(#wl, ROUTED_WORKLOADS) do
      local text = wl[i][2]
      local _, wd = stored_doc(text)
      if wd.images == nil and string.sub(text, -1) == '}' then
        local ok, v = pcall(cjson.decode, wl[i][3])
        local list = {}
        if ok and type(v) == 'table' and type(v.i) == 'table' then
          for _, d in ipairs(v.i) do if is_str(d) then list[#list + 1] = jstr(d) end end
        end
        text = string.sub(text, 1, -2) .. ',"images":[' .. table.concat(list, ',') .. ']}'
      end
      wtexts[i] = text
    end
    local newest = maps[1].m
    local data = '{"digest":' .. jstr(digest) .. ',"image":' .. enc_image_data(newest.image)
      .. ',"build":' .. enc_build(newest.build)
      .. ',"mappings":[' .. table.concat(texts, ',') .. ']'
      .. ',"findings":{"summary":' .. summary .. ',"new":[' .. table.concat(encoded, ',') .. ']}'
      .. ',"workloads":[' .. table.concat(wtexts, ',') .. ']}'
    local id = redis.sha1hex('finding.routed|' .. digest .. '|' .. table.concat(keys, '\n'))
    emit(base .. 'out', 'finding.routed.v1', id, digest, data)
    return 1, #new
  end

  return {
    SEVERITIES = SEVERITIES, sev_rank = sev_rank, finding_key = finding_key,
    sort_findings = sort_findings, scanner_findings = scanner_findings,
    findings_union = findings_union, enc_finding = enc_finding, route_findings = route_findings,
  }end

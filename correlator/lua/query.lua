#!lua flags=no-writes
-- query.lua (after clock.lua and lib.lua): what is stored about one digest, read atomically
-- in one round trip and answered in its final JSON form (GET /v1/images/<digest>), so that
-- only the Lua side reads the stored form. Read-only (no-writes: it also runs when Redis is
-- over maxmemory).
--
-- KEYS: 1 r, 2 b, 3 m, 4 d, 5 mi (one digest's keys, see park.lua), 6 f (findings per scanner),
--       7 fs (findings summary), 8 w (workloads): README.md "Redis layout"
-- ARGV: 1 limit: mappings wanted (1..500), 2 the last edge id of the previous page ("" = from
--       the first), 3 findings wanted (1..500), 4 the sort key of the last finding of the
--       previous page ("" = from the first)
-- Returns {mappings, pending pushes, pending builds, deletes, next, total, summary, findings,
-- findings next, findings total, workloads, workloads total}: mappings, pending pushes, pending builds, deletes,
-- findings and workloads each the text of a JSON array of the answer's objects ("[]" when
-- there are none); next the last edge id of this page when more follow, "" otherwise; total
-- the number of stored mappings; summary the stored summary ("" when none); findings next the
-- sort key of the page's last finding when more follow, "" otherwise; findings total the
-- number of findings stored; workloads total the number of workloads running the digest when
-- more than the (at most 100) answered, else 0.
-- Findings are one item per (scanner, id, package), ordered by their sort key
-- "<severity rank>\31<id>\31<package>\31<scanner>" (most severe first): stable across pages.
-- Workloads are ordered by their field "<cluster>/<namespace>/<kind>/<name>".
-- The mappings are one page in edge-id order, strictly after ARGV[2]: stable across pages (an
-- id never moves) and every mapping stored throughout a walk is answered exactly once. The
-- pending and delete lists are whole on every page: the per-digest bounds (park.lua) keep them
-- small. Parked items whose expiry ("x") has passed are left out: no longer joinable, so not
-- pending (the sweeper reports them). Values that are not JSON objects or arrays (only a
-- foreign writer could leave them) are left out too.

local L = lib(now)
local jstr, is_str, jarr, iso, media_type, tags_of, build_object, stored_doc, answer_text =
  L.jstr, L.is_str, L.jarr, L.iso, L.media_type, L.tags_of, L.build_object, L.stored_doc,
  L.answer_text

-- A parked push at location "<registry>/<repository>" -> its entry in pending.registry.
local function pending_push(loc, p)
  local slash = string.find(loc, '/', 1, true)
  local registry = slash and string.sub(loc, 1, slash - 1) or loc
  local repository = slash and string.sub(loc, slash + 1) or ''
  return '{"registry":' .. jstr(registry) .. ',"repository":' .. jstr(repository)
    .. ',"tags":' .. jarr(tags_of(p))
    .. (is_str(p.s) and (',"source":' .. jstr(p.s)) or '')
    .. (is_str(p.e) and (',"event_id":' .. jstr(p.e)) or '')
    .. (is_str(p.m) and (',"media_type":' .. jstr(media_type(p.m))) or '')
    .. ',"pushed_at":' .. jstr(iso(tonumber(p.t) or 0))
    .. ',"matched":' .. tostring(p.k ~= nil)
    .. ',"expires_at":' .. jstr(iso(tonumber(p.x) or 0)) .. '}'
end

-- A parked build (either stored form, lib.lua) -> its entry in pending.build: the identity in
-- the record's key order, with built_at beside it, not inside.
local function pending_build(b)
  local out = ''
  if (is_str(b.f) and is_str(b.v)) or type(b.b) == 'table' then
    out = '"build":' .. build_object(b) .. ','
  end
  return '{' .. out .. '"relation":' .. (is_str(b.r) and '"platform-manifest"' or '"image"')
    .. (is_str(b.i) and (',"index":' .. jstr(b.i)) or '')
    .. (is_str(b.n) and (',"name":' .. jstr(b.n)) or '')
    .. ',"tags":' .. jarr(tags_of(b))
    .. ',"built_at":' .. jstr(iso(tonumber(b.t) or 0))
    .. ',"matched":' .. tostring(b.k ~= nil)
    .. ',"expires_at":' .. jstr(iso(tonumber(b.x) or 0)) .. '}'
end

-- The parked items of hash key that are still pending, each shaped by shape(field, item).
local function pending(key, shape)
  local out = {}
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local _, item = stored_doc(all[i + 1])
    if item and (tonumber(item.x) or 0) >= now then out[#out + 1] = shape(all[i], item) end
  end
  return out
end

-- The stored documents of hash key as they are (mappings and delete records are stored in
-- their answer form); values is HVALS or HMGET's answer (false for a missing field).
local function documents(values)
  local out = {}
  for _, v in ipairs(values) do
    if v then out[#out + 1] = stored_doc(v) end
  end
  return out
end

-- One page of mapping ids after `after`, with one more id when more follow. The id index
-- (mi) normally lists every mapping; mappings stored before it existed leave it short, and
-- then their ids are read and sorted here (the same order) until they expire.
local function page_ids(limit, after, total)
  if redis.call('ZCARD', KEYS[5]) == total then
    return redis.call('ZRANGE', KEYS[5], after == '' and '-' or '(' .. after, '+', 'BYLEX',
      'LIMIT', 0, limit + 1)
  end
  local all = redis.call('HKEYS', KEYS[3])
  table.sort(all)
  local ids = {}
  for _, id in ipairs(all) do
    if id > after then
      ids[#ids + 1] = id
      if #ids > limit then break end
    end
  end
  return ids
end

local function array(list) return answer_text('[' .. table.concat(list, ',') .. ']') end

local RANK = { critical = 0, high = 1, medium = 2, low = 3, unknown = 4 }
local FINDING_KEYS = { 'installed', 'fixed', 'status', 'path' }

-- Every stored finding of the digest with its sort key, sorted; fields "<scanner>#counts" hold
-- counts only (they are in the summary's by_scanner).
local function all_findings()
  local out = {}
  local f = redis.call('HGETALL', KEYS[6])
  for i = 1, #f, 2 do
    local scanner = f[i]
    local ok, list = pcall(cjson.decode, f[i + 1])
    if not string.find(scanner, '#', 1, true) and ok and type(list) == 'table' then
      for _, x in ipairs(list) do
        if type(x) == 'table' and is_str(x.id) and is_str(x.package) then
          local sev = RANK[x.severity] and x.severity or 'unknown'
          out[#out + 1] = { key = RANK[sev] .. '\31' .. x.id .. '\31' .. x.package .. '\31' .. scanner,
                            sev = sev, x = x, scanner = scanner }
        end
      end
    end
  end
  table.sort(out, function(a, b) return a.key < b.key end)
  return out
end

local function enc_finding(e)
  local parts = { '"id":' .. jstr(e.x.id), '"package":' .. jstr(e.x.package),
                  '"severity":' .. jstr(e.sev) }
  for _, k in ipairs(FINDING_KEYS) do
    if is_str(e.x[k]) then parts[#parts + 1] = '"' .. k .. '":' .. jstr(e.x[k]) end
  end
  parts[#parts + 1] = '"scanner":' .. jstr(e.scanner)
  return '{' .. table.concat(parts, ',') .. '}'
end

-- One page of findings strictly after sort key `after`: the items, the next key or "".
local function findings_page(limit, after)
  local all = all_findings()
  local items, next_key, last = {}, '', ''
  for _, e in ipairs(all) do
    if e.key > after then
      if #items == limit then
        next_key = last
        break
      end
      items[#items + 1] = enc_finding(e)
      last = e.key
    end
  end
  return items, next_key, #all
end

-- The workloads running the digest, in field order: at most MAX_WORKLOADS of them, and how
-- many there are. A field whose workload is not in its cluster's inventory of this shard
-- (wc:<cluster>, same slot) is a ghost: the cluster stopped reporting, its wc key expired,
-- and other clusters running the digest kept the w: key alive (workloads.lua removes ghosts
-- when it meets them; this script does not write). The images come from that inventory field
-- ("i"); a value stored with its "images" (before they moved to wc) is answered as it is.
local MAX_WORKLOADS = 100
local function workloads()
  local base = string.match(KEYS[8], '^(.*)w:[^:]+:[^:]+$')
  local all = redis.call('HGETALL', KEYS[8])
  local fields = {}
  for i = 1, #all, 2 do
    local c, rest = string.match(all[i], '^([^/]+)/(.+)$')
    if c and stored_doc(all[i + 1])
        and redis.call('HEXISTS', base .. 'wc:' .. c, rest) == 1 then
      fields[#fields + 1] = { all[i], all[i + 1], c, rest }
    end
  end
  table.sort(fields, function(a, b) return a[1] < b[1] end)
  local out = {}
  for i = 1, math.min(#fields, MAX_WORKLOADS) do
    local f = fields[i]
    local text = f[2]
    local _, w = stored_doc(text)
    if w and w.images == nil and string.sub(text, -1) == '}' then
      local ok, inv = pcall(cjson.decode, redis.call('HGET', base .. 'wc:' .. f[3], f[4]) or '')
      local images = (ok and type(inv) == 'table' and type(inv.i) == 'table') and inv.i or {}
      local list = {}
      for _, d in ipairs(images) do
        if is_str(d) then list[#list + 1] = jstr(d) end
      end
      text = string.sub(text, 1, -2) .. ',"images":[' .. table.concat(list, ',') .. ']}'
    end
    out[i] = text
  end
  return out, #fields
end

local limit = tonumber(ARGV[1])
local total = redis.call('HLEN', KEYS[3])
local ids = total > 0 and page_ids(limit, ARGV[2], total) or {}
local next_id = ''
if #ids > limit then
  next_id = ids[limit]
  ids[limit + 1] = nil
end
local mappings = #ids > 0 and redis.call('HMGET', KEYS[3], unpack(ids)) or {}

local summary = redis.call('GET', KEYS[7])
if not (summary and stored_doc(summary)) then summary = '' end
local items, findings_next, findings_total = findings_page(tonumber(ARGV[3]), ARGV[4])
local wl, wl_total = workloads()

return { array(documents(mappings)), array(pending(KEYS[1], pending_push)),
         array(pending(KEYS[2], function(_, b) return pending_build(b) end)),
         array(documents(redis.call('HVALS', KEYS[4]))), next_id, total,
         answer_text(summary), array(items), findings_next, findings_total,
         array(wl), #wl < wl_total and wl_total or 0 }

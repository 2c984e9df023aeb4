#!lua
-- findings.lua (after clock.lua and lib.lua): store one findings report's findings of one
-- digest, recompute the digest's summary and route what became routable (docs/findings.md);
-- atomically, so a report and a confirmed edge arriving together on two instances still route
-- each finding once.
--
-- The shebang declares a script that writes (Redis 7's default flags): over maxmemory Redis
-- refuses it before it runs, and the sender gets 503 + Retry-After (park.lua says more).
--
-- KEYS (all of the digest's shard, so one hash slot):
--   1 <p>:{s}:f:<digest>   hash    scanner -> JSON array of its current findings (lib.lua's
--                                  stored form); "<scanner>#counts" -> {"critical":n,…}
--   2 <p>:{s}:fs:<digest>  string  the summary: {"critical","high","medium","low","unknown",
--                                  "by_scanner":{…}}, distinct ids by severity; absent
--                                  without findings
--   3 <p>:{s}:fr:<digest>  zset    "<id>|<package>" of the findings routed for the digest ->
--                                  when last routed or seen routable (ms); bounded (lib.lua)
--   4 <p>:{s}:m:<digest>   hash    the mappings (park.lua's), read by route_findings
--   5 <p>:{s}:out          stream  the output records
--   and, undeclared but in the same slot, <p>:{s}:w:<digest> (the workloads, read for the
--   record; its writer owns it)
-- ARGV:
--   1 the report (adapters/dm_finding.h dm_finding_report_to_json)
--   2 the digest (one of the report's digests: the caller calls once per digest)
--   3 ttl ms (correlation.findings_ttl_seconds): f, fs and fr expire this long after the last
--     write
--   4 max findings per digest (limits.max_findings_per_digest)
--   5 routing.min_severity as a rank (0 critical … 4 unknown)
-- Returns {findings of this report stored, findings dropped by the per-digest bound,
--          finding.routed records appended (0/1), findings routed}.
--
-- Kinds: a snapshot replaces its scanner's field (an empty one removes it); an update upserts,
-- or with "removed" deletes, each of its (id, package) in its scanner's field; counts replace
-- the field "<scanner>#counts". The union over scanners is then bounded to max findings, most
-- severe kept (the same order as the parsers'); the ones left out are removed from every
-- scanner's field, so the stored findings and the summary always agree.

local L = lib(now)
local jstr, store = L.jstr, L.store
local F = findings_lib(L)
local SEVERITIES, sev_rank, finding_key, sort_findings = F.SEVERITIES, F.sev_rank,
  F.finding_key, F.sort_findings
local scanner_findings, findings_union, route_findings = F.scanner_findings, F.findings_union,
  F.route_findings

local doc = cjson.decode(ARGV[1])
local digest = ARGV[2]
local ttl = tonumber(ARGV[3])
local max_findings = tonumber(ARGV[4])
local min_rank = tonumber(ARGV[5])
local base = string.sub(KEYS[5], 1, -4)
local scanner = doc.scanner

-- The stored form of one finding of the report.
local function stored_finding(f)
  return { id = f.id, package = f.package, severity = f.severity, installed = f.installed,
           fixed = f.fixed, status = f.status, path = f.path }
end

local function write_field(field, list)
  if #list == 0 then
    redis.call('HDEL', KEYS[1], field)
  else
    redis.call('HSET', KEYS[1], field, store(list))
  end
end

local function counts_doc(c)
  local parts = {}
  for i, s in ipairs(SEVERITIES) do
    parts[i] = '"' .. s .. '":' .. string.format('%d', tonumber(type(c) == 'table' and c[s]) or 0)
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

local mine = {} -- the keys this report wrote
local findings = type(doc.findings) == 'table' and doc.findings or {}
if doc.kind == 'snapshot' then
  local list = {}
  for _, f in ipairs(findings) do
    list[#list + 1] = stored_finding(f)
    mine[finding_key(f)] = true
  end
  write_field(scanner, list)
elseif doc.kind == 'update' then
  local raw = redis.call('HGET', KEYS[1], scanner)
  local list = raw and scanner_findings(raw) or {}
  local touched = {}
  for _, f in ipairs(findings) do touched[finding_key(f)] = f end
  local out = {}
  for _, f in ipairs(list) do
    if not touched[finding_key(f)] then out[#out + 1] = f end
  end
  if doc.removed ~= true then
    for _, f in ipairs(findings) do
      out[#out + 1] = stored_finding(f)
      mine[finding_key(f)] = true
    end
  end
  write_field(scanner, sort_findings(out))
elseif doc.kind == 'counts' then
  redis.call('HSET', KEYS[1], scanner .. '#counts', counts_doc(doc.counts))
else
  return redis.error_reply('ERR findings.lua: unknown report kind')
end

-- The union, bounded.
local all = redis.call('HGETALL', KEYS[1])
local union = findings_union(all)
local list = {}
for _, f in pairs(union) do list[#list + 1] = f end
sort_findings(list)
local dropped = 0
if #list > max_findings then
  local gone = {}
  for i = max_findings + 1, #list do gone[finding_key(list[i])] = true end
  dropped = #list - max_findings
  for i = #list, max_findings + 1, -1 do list[i] = nil end
  for i = 1, #all, 2 do
    if not string.find(all[i], '#', 1, true) then
      local kept, changed = {}, false
      for _, f in ipairs(scanner_findings(all[i + 1])) do
        if gone[finding_key(f)] then changed = true else kept[#kept + 1] = f end
      end
      if changed then
        write_field(all[i], kept)
        all[i + 1] = store(kept)
      end
    end
  end
end

-- The summary counts distinct ids (README.md "Vulnerabilities and workloads"): a CVE in
-- libssl3 and in libcrypto3 is one flaw, counted once at its highest severity over its
-- packages (and scanners); the items stay keyed (id, package). by_scanner per scanner: its
-- itemized findings counted the same way, or its counts when it has none.
local function count_ids(fl)
  local best = {}
  for _, f in ipairs(fl) do
    local r = sev_rank(f.severity)
    if not best[f.id] or r < best[f.id] then best[f.id] = r end
  end
  local c = { 0, 0, 0, 0, 0 }
  for _, r in pairs(best) do c[r + 1] = c[r + 1] + 1 end
  return c
end
local total = count_ids(list)
local stored = 0
for _, f in ipairs(list) do
  if mine[finding_key(f)] then stored = stored + 1 end
end
local per, names = {}, {}
for i = 1, #all, 2 do
  local field = all[i]
  local name = string.match(field, '^(.*)#counts$')
  if name then
    if not per[name] then
      local ok, c = pcall(cjson.decode, all[i + 1])
      per[name] = counts_doc(ok and c or nil)
      names[#names + 1] = name
    end
  else
    local fl = scanner_findings(all[i + 1])
    local c = count_ids(fl)
    if #fl > 0 then
      if not per[field] then names[#names + 1] = field end
      per[field] = counts_doc({ critical = c[1], high = c[2], medium = c[3], low = c[4],
                                unknown = c[5] })
    end
  end
end

if #names == 0 then
  redis.call('DEL', KEYS[2])
  return { stored, dropped, 0, 0 }
end
table.sort(names)
local bs = {}
for i, n in ipairs(names) do bs[i] = jstr(n) .. ':' .. per[n] end
local summary = string.sub(counts_doc({ critical = total[1], high = total[2], medium = total[3],
  low = total[4], unknown = total[5] }), 1, -2) .. ',"by_scanner":{' .. table.concat(bs, ',') .. '}}'
redis.call('SET', KEYS[2], summary, 'PX', ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)

local records, routed = route_findings(base, digest, min_rank, ttl, max_findings)
return { stored, dropped, records, routed }

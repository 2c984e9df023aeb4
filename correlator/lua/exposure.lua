#!lua flags=allow-oom
-- exposure.lua (after clock.lua and lib.lua): one page of one shard's exposure index
-- (GET /v1/exposure), read in one call: the workloads of one exposure level running digests
-- of this shard, each with the images that have findings at or above a severity.
--
-- allow-oom (the shebang, Redis 7): a query must answer when Redis is full, and its only writes
-- remove index entries (and w: fields) whose workload is gone.
-- KEYS: 1 <p>:{s}:xw:<exposure>  zset, members "<cluster>/<namespace>/<kind>/<name>|<digest>"
--       (lua/workloads.lua); undeclared but in the same slot: <p>:{s}:w:<digest>,
--       <p>:{s}:wc:<cluster> (the cluster's inventory: a member whose workload it does not
--       list is a ghost, removed with its w: field), <p>:{s}:fs:<digest> (findings summary),
--       <p>:{s}:m:<digest> (mappings)
-- ARGV: 1 "<p>:{s}:", 2 cursor: the last workload key already answered ("" = from the first),
--       3 workloads wanted (1..500), 4 min severity rank (0 critical .. 4 unknown),
--       5 the exposure level, 6 most index entries to examine, 7 most mappings per image
-- Returns {exhausted (0/1), frontier, dead removed, key 1, workload 1, images 1, key 2, …}:
-- workloads in index order after the cursor, each with at least one image that passes; a
-- workload is its stored JSON (lua/workloads.lua), its images the text of a JSON array of
-- {"digest", "findings": {"summary"}, "mappings": [{"image", "build"}]}. frontier is the last
-- workload examined (the cursor when none was): everything up to it has been answered;
-- exhausted = 1 when nothing follows it. The caller merges the shards by workload key and must
-- not go past the smallest frontier of a shard that is not exhausted.
--
-- Index order: the members of one workload are adjacent ("<key>|" is their common prefix), and
-- workloads follow each other in the byte order of "<key>|". An image passes when its summary
-- (or one scanner's in by_scanner: counts-only scanners are only there) counts a finding at or
-- above the severity. Its mappings are the newest (by built_at, else pushed_at) first.
local L = lib(now)
local jstr, is_str, enc_image_data, enc_build, stored_doc, answer_text =
  L.jstr, L.is_str, L.enc_image_data, L.enc_build, L.stored_doc, L.answer_text

local key, base = KEYS[1], ARGV[1]
local cursor = ARGV[2]
local per = tonumber(ARGV[3])
local min_rank = tonumber(ARGV[4])
local level = ARGV[5]
local budget = tonumber(ARGV[6])
local max_mappings = tonumber(ARGV[7])
local SEVERITIES = { 'critical', 'high', 'medium', 'low', 'unknown' }
local BATCH = 128

local function counts_pass(c)
  if type(c) ~= 'table' then return false end
  for r = 0, min_rank do
    local n = tonumber(c[SEVERITIES[r + 1]])
    if n and n > 0 then return true end
  end
  return false
end

-- The digest's summary text when it passes, nil otherwise.
local function passing_summary(digest)
  local text = redis.call('GET', base .. 'fs:' .. digest)
  if not text then return nil end
  local _, s = stored_doc(text)
  if not s then return nil end
  if counts_pass(s) then return text end
  if type(s.by_scanner) == 'table' then
    for _, c in pairs(s.by_scanner) do
      if counts_pass(c) then return text end
    end
  end
  return nil
end

local function image_entry(digest, summary)
  local list = {}
  for _, text in ipairs(redis.call('HVALS', base .. 'm:' .. digest)) do
    local _, m = stored_doc(text)
    if m and type(m.image) == 'table' and type(m.build) == 'table' then
      local b = m.build
      list[#list + 1] = { at = (is_str(b.built_at) and b.built_at) or
                               (is_str(m.image.pushed_at) and m.image.pushed_at) or '', m = m }
    end
  end
  table.sort(list, function(a, b) return a.at > b.at end)
  local out = {}
  for i = 1, math.min(#list, max_mappings) do
    out[i] = '{"image":' .. enc_image_data(list[i].m.image) .. ',"build":'
      .. enc_build(list[i].m.build) .. '}'
  end
  return '{"digest":' .. jstr(digest) .. ',"findings":{"summary":' .. summary
    .. '},"mappings":[' .. table.concat(out, ',') .. ']}'
end

local out = { 1, cursor, 0 }
local found, examined, dead = 0, 0, 0
local cur_key, cur_w, cur_images = nil, nil, {}
local function finish_workload()
  if not cur_key then return end
  if cur_w and #cur_images > 0 then
    table.sort(cur_images)
    out[#out + 1] = cur_key
    out[#out + 1] = cur_w
    out[#out + 1] = answer_text('[' .. table.concat(cur_images, ',') .. ']')
    found = found + 1
  end
  out[2] = cur_key
end

local start = cursor == '' and '-' or ('(' .. cursor .. '|\255')
local stopped = false
while not stopped do
  local batch = redis.call('ZRANGE', key, start, '+', 'BYLEX', 'LIMIT', 0, BATCH)
  for _, member in ipairs(batch) do
    local wkey, digest = string.match(member, '^(.+)|(sha256:%x+)$')
    if wkey ~= cur_key then
      finish_workload()
      if found >= per or examined >= budget then
        out[1] = 0
        stopped = true
        break
      end
      cur_key, cur_w, cur_images = wkey, nil, {}
    end
    examined = examined + 1
    local w = wkey and redis.call('HGET', base .. 'w:' .. digest, wkey)
    local _, wd = stored_doc(w or '')
    local c, rest = string.match(wkey or '', '^([^/]+)/(.+)$')
    local listed = c and redis.call('HEXISTS', base .. 'wc:' .. c, rest) == 1
    if not (wd and wd.exposure == level and listed) then
      -- the workload no longer runs it at this level (its keys expired or a foreign writer),
      -- or its cluster stopped reporting: the cluster's inventory (wc:<cluster>) expired while
      -- other clusters running the digest kept w: and this index alive (a ghost)
      redis.call('ZREM', key, member)
      if wd and not listed then redis.call('HDEL', base .. 'w:' .. digest, wkey) end
      dead = dead + 1
    else
      cur_w = w
      local summary = passing_summary(digest)
      if summary then cur_images[#cur_images + 1] = image_entry(digest, summary) end
    end
    start = '(' .. member
  end
  if #batch < BATCH then break end
end
if not stopped then finish_workload() end
out[3] = dead
return out

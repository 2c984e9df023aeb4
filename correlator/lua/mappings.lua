#!lua flags=allow-oom
-- mappings.lua (after clock.lua and lib.lua): one page of one shard's query index
-- (GET /v1/mappings), read in one call.
--
-- allow-oom (the shebang, Redis 7): a query must answer when Redis is full, and its only writes
-- remove expired or dangling index entries.
-- KEYS: 1 <p>:{s}:ix:<kind>:<name>  zset, members "<inverted ms>|<digest>|<edge id>" (park.lua)
-- ARGV: 1 cursor: the last member already returned ("" = from the newest)
--       2 limit: live mappings wanted (1..500)
--       3 "<p>:{s}:" (this shard's key prefix, for the <p>:{s}:m:<digest> hashes)
--       4 mapping ttl ms
-- Returns {exhausted (0/1), frontier, dead removed, member 1, mapping 1, member 2, …}: up to
-- limit (member, mapping) pairs after the cursor, in member order (newest first). A mapping is
-- its element of the answer, the stored document with "confirmed_at" (the member's time)
-- added, or "" when the stored value is not a JSON object (only a foreign writer could leave
-- one; the caller logs and skips it).
-- frontier is the last member examined (the cursor when none was): everything up to it has
-- been seen; exhausted = 1 when nothing follows it. The caller merges the shards' pages and
-- must not go past the smallest frontier of a shard that is not exhausted.
--
-- The mapping hashes are undeclared keys of this script, in the index's own hash slot (same
-- {s} tag), like park.lua's index writes. A member whose mapping is gone (expired with its
-- hash, evicted) is skipped and removed here. The work per call is bounded: at most 4 × limit
-- members are examined, so a page may hold fewer than limit mappings with exhausted = 0, and at
-- most TRIM_BATCH expired entries are removed. Expired entries left for a later call are never
-- read: the range stops before the first one, so expiry is exact all the same.
local L = lib(now)
local jstr, iso, stored_doc, answer_text = L.jstr, L.iso, L.stored_doc, L.answer_text

local key = KEYS[1]
local cursor = ARGV[1]
local limit = tonumber(ARGV[2])
local base = ARGV[3]
local mapping_ttl = tonumber(ARGV[4])

local function inverted(ms) return string.format('%013d', 9999999999999 - ms) end

-- The stored mapping of member as its element of the answer (see above).
local function answer(member, data)
  local text, m = stored_doc(data)
  if not text or string.sub(text, 1, 1) ~= '{' or string.sub(text, -1) ~= '}' then return '' end
  local at = jstr(iso(9999999999999 - (tonumber(string.sub(member, 1, 13)) or 0)))
  local open = next(m) == nil and '{' or (string.sub(text, 1, -2) .. ',')
  return answer_text(open .. '"confirmed_at":' .. at .. '}')
end

-- Entries confirmed before now - mapping_ttl (inverted time >= that of now - mapping_ttl - 1)
-- are expired: removed a batch at a time (not only at the index's next write), never returned.
local TRIM_BATCH = 1000
local expired = inverted(math.max(now - mapping_ttl - 1, 0))
local gone = redis.call('ZRANGE', key, '[' .. expired, '+', 'BYLEX', 'LIMIT', 0, TRIM_BATCH)
if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
local last = '(' .. expired -- members < the expired bound: live by time

local out = { 0, cursor, 0 }
local found, dead = 0, 0
local budget = 4 * limit
local from = cursor == '' and '-' or '(' .. cursor
local exhausted = false
while found < limit and budget > 0 do
  local want = math.min(limit - found, budget)
  local batch = redis.call('ZRANGE', key, from, last, 'BYLEX', 'LIMIT', 0, want)
  budget = budget - #batch
  for _, member in ipairs(batch) do
    out[2] = member
    local d, id = string.match(member, '^%d+|([^|]+)|(%x+)$')
    local data = d and redis.call('HGET', base .. 'm:' .. d, id)
    if data then
      out[#out + 1] = member
      out[#out + 1] = answer(member, data)
      found = found + 1
    else
      redis.call('ZREM', key, member)
      dead = dead + 1
    end
  end
  if #batch < want then
    exhausted = true
    break
  end
  from = '(' .. out[2]
end
if not exhausted then
  -- Stopped by the limit or the budget: is there anything at all after the frontier?
  local from_next = out[2] == '' and '-' or '(' .. out[2]
  exhausted = #redis.call('ZRANGE', key, from_next, last, 'BYLEX', 'LIMIT', 0, 1) == 0
end
out[1] = exhausted and 1 or 0
out[3] = dead
return out

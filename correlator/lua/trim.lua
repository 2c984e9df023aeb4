-- trim.lua: trim one output stream to stream_maxlen entries, but never remove an entry that a
-- protected consumer group has not acknowledged yet (DESIGN §7: no silent data loss).
--
-- XADD MAXLEN would drop the oldest entries whatever the groups still need, so records are
-- appended untrimmed (lib.lua emit) and this script, run every trim_interval_ms by one
-- instance or several (it is idempotent), removes the oldest entries up to the first one a
-- protected group still needs: its oldest pending entry, or the first entry after its
-- last-delivered id. While a group lags, the stream grows past maxlen; the caller warns.
--
-- KEYS: 1 <p>:{s}:out
-- ARGV: 1 maxlen, 2 most entries to remove in this call, 3.. protected group names
-- Returns {length before, entries removed, more to remove (0/1),
--          group name, backlog (entries not yet acknowledged; -1 unknown), …} with one pair
--          per protected group that exists on the stream.
local key = KEYS[1]
local maxlen = tonumber(ARGV[1])
local max_remove = tonumber(ARGV[2])
if redis.call('EXISTS', key) == 0 then return { 0, 0, 0 } end
local len = redis.call('XLEN', key)

local protected = {}
for i = 3, #ARGV do protected[ARGV[i]] = true end

-- Stream ids "<ms>-<seq>" as two numbers (ms < 2^53: exact in Lua's doubles).
local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function id_less(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  return am < bm or (am == bm and as < bs)
end
local function next_id(id)
  local ms, seq = parse_id(id)
  return string.format('%d-%d', ms, seq + 1)
end

local out = { len, 0, 0 }
local keep_from = nil -- the oldest entry some protected group still needs
for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if protected[f['name']] then
    local need
    local pending = tonumber(f['pending']) or 0
    if pending > 0 then
      need = redis.call('XPENDING', key, f['name'])[2]
    else
      need = next_id(f['last-delivered-id'])
    end
    if keep_from == nil or id_less(need, keep_from) then keep_from = need end
    local lag = tonumber(f['lag'])
    out[#out + 1] = f['name']
    out[#out + 1] = lag and (lag + pending) or -1
  end
end

local excess = len - maxlen
if excess <= 0 then return out end
local n = excess < max_remove and excess or max_remove
local victims
if keep_from then
  victims = redis.call('XRANGE', key, '-', '(' .. keep_from, 'COUNT', n)
else
  victims = redis.call('XRANGE', key, '-', '+', 'COUNT', n)
end
if #victims == 0 then return out end
-- MINID removes every entry older than the given id: exactly the victims, oldest first.
out[2] = redis.call('XTRIM', key, 'MINID', next_id(victims[#victims][1]))
if #victims == max_remove and excess > max_remove then out[3] = 1 end
return out

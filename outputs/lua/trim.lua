-- trim.lua: trim one output stream to stream_maxlen entries, but never remove an entry that a
-- protected consumer group has not acknowledged yet: a lagging consumer makes the stream grow,
-- it never loses a record silently (README.md "Trimming and lagging consumers").
--
-- XADD MAXLEN would drop the oldest entries whatever the groups still need, so records are
-- appended untrimmed (lib.lua emit) and this script, run every trim_interval_ms by one
-- instance or several (it is idempotent), removes the oldest entries up to the first one a
-- protected group still needs: its oldest pending entry, or the first entry after its
-- last-delivered id. While a group lags, the stream grows past maxlen; the caller warns.
--
-- Protected: the groups named in ARGV, and every group named "digestmap:…" (the webhook sinks'),
-- so an instance whose configuration lags behind another's (a rolling change that adds a sink)
-- still spares the new sink's group.
--
-- Ids are compared and bounded as text (no arithmetic: sequence numbers go up to 2^64 - 1 and
-- milliseconds past 2^53, which Lua's doubles cannot hold exactly).
--
-- KEYS: 1 <p>:{s}:out
-- ARGV: 1 maxlen, 2 most entries to remove in this call, 3.. protected group names
-- Returns {length before, entries removed, more to remove (0/1), the group that held trimming
--          back ("" if none), group name, backlog (entries not yet acknowledged; -1 unknown), …}
--          with one pair per protected group that exists on the stream.
local key = KEYS[1]
local maxlen = tonumber(ARGV[1])
local max_remove = tonumber(ARGV[2])
if redis.call('EXISTS', key) == 0 then return { 0, 0, 0, '' } end
local len = redis.call('XLEN', key)

local protected = {}
for i = 3, #ARGV do protected[ARGV[i]] = true end

-- "<ms>-<seq>": decimal numbers without leading zeros, so a shorter one is smaller.
local function num_less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function id_cmp(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if am ~= bm then return num_less(am, bm) and -1 or 1 end
  if as == bs then return 0 end
  return num_less(as, bs) and -1 or 1
end

-- The newest entry that may go, as an XRANGE end: "(<oldest pending>" (exclusive) or
-- "<last delivered>" (inclusive); the lowest over the protected groups wins.
local bound, bound_id, bound_excl, holder = nil, nil, false, ''
local out = { len, 0, 0, '' }
for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  local name = f['name']
  if protected[name] or string.sub(name, 1, 10) == 'digestmap:' then
    local pending = tonumber(f['pending']) or 0
    local id, excl
    if pending > 0 then
      id, excl = redis.call('XPENDING', key, name)[2], true
    else
      id, excl = f['last-delivered-id'], false
    end
    local c = bound_id and id_cmp(id, bound_id) or -1
    if c < 0 or (c == 0 and excl and not bound_excl) then
      bound_id, bound_excl, holder = id, excl, name
    end
    local lag = tonumber(f['lag'])
    out[#out + 1] = name
    out[#out + 1] = lag and (lag + pending) or -1
  end
end
if bound_id then bound = (bound_excl and '(' or '') .. bound_id else bound = '+' end

local excess = len - maxlen
if excess <= 0 then return out end
local n = excess < max_remove and excess or max_remove
local victims = {}
if not (bound == '(0-0') then
  victims = redis.call('XRANGE', key, '-', bound, 'COUNT', n)
end
if #victims < n and bound_id then out[4] = holder end
if #victims == 0 then return out end
-- MINID removes every entry older than the given id: the first entry after the victims, which
-- exists because maxlen >= 1 keeps at least one.
local after = redis.call('XRANGE', key, '(' .. victims[#victims][1], '+', 'COUNT', 1)
if #after == 0 then return out end
out[2] = redis.call('XTRIM', key, 'MINID', after[1][1])
if #victims == max_remove and excess > max_remove then out[3] = 1 end
return out

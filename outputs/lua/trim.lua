-- trim.lua: trim one output stream to stream_maxlen entries, but never remove an entry that a
-- protected consumer group has not acknowledged yet, unless that group is more than
-- max_group_lag entries behind: a lagging consumer makes the stream grow up to about
-- max(stream_maxlen, max_group_lag) entries, never without end (README.md "Trimming and lagging
-- consumers"). Also caps the shard's dead-letter stream at stream_maxlen entries.
--
-- XADD MAXLEN would drop the oldest entries whatever the groups still need, so records are
-- appended untrimmed (lib.lua emit) and this script, run every trim_interval_ms by one
-- instance or several (it is idempotent), removes the oldest entries up to the first one a
-- protected group still needs: its oldest pending entry, or the first entry after its
-- last-delivered id. While a group lags, the stream grows past maxlen; the caller warns.
--
-- A group's backlog is its lag (entries not yet delivered to it; at most the stream's length:
-- Redis keeps counting the entries trimmed past it) plus its pending entries. When Redis gives
-- no lag figure (Redis 6.2; an entry deleted after the group's position), the backlog of the
-- group that holds trimming back is the number of entries from its position to the end. A
-- group whose backlog passes max_group_lag no longer holds trimming back: the entries removed
-- past its position are counted for it ("dropped"), and the caller logs and counts them.
--
-- Protected: the groups named in ARGV, and every group named "digestmap:…" (the webhook sinks'),
-- so an instance whose configuration lags behind another's (a rolling change that adds a sink)
-- still spares the new sink's group.
--
-- Ids are compared and bounded as text (no arithmetic: sequence numbers go up to 2^64 - 1 and
-- milliseconds past 2^53, which Lua's doubles cannot hold exactly).
--
-- KEYS: 1 <p>:{s}:out, 2 <p>:{s}:dead (the same shard: one hash slot)
-- ARGV: 1 maxlen, 2 most entries to remove from each stream in this call, 3 max_group_lag,
--       4.. protected group names
-- Returns {length before, entries removed, more to remove (0/1), the group that held trimming
--          back ("" if none), dead-letter entries removed,
--          group name, backlog (entries not yet acknowledged; -1 unknown), entries removed that
--          it had not acknowledged, …} with one triple per protected group on the stream.
local key, dead = KEYS[1], KEYS[2]
local maxlen = tonumber(ARGV[1])
local max_remove = tonumber(ARGV[2])
local max_lag = tonumber(ARGV[3])
local out = { 0, 0, 0, '', 0 }

-- The dead-letter stream has no consumer groups: its oldest entries go beyond maxlen.
local dead_len = redis.call('XLEN', dead)
if dead_len > maxlen then
  local n = math.min(dead_len - maxlen, max_remove)
  local first = redis.call('XRANGE', dead, '-', '+', 'COUNT', n + 1)
  out[5] = redis.call('XTRIM', dead, 'MINID', first[#first][1])
  if dead_len - maxlen > max_remove then out[3] = 1 end
end

if redis.call('EXISTS', key) == 0 then return out end
local len = redis.call('XLEN', key)
out[1] = len

local protected = {}
for i = 4, #ARGV do protected[ARGV[i]] = true end

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

-- Each protected group: where it stands (an XRANGE end: "(<oldest pending>" exclusive, or
-- "<last delivered>" inclusive, for the newest entry that may go) and its backlog.
local groups = {}
for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  local name = f['name']
  if protected[name] or string.sub(name, 1, 10) == 'digestmap:' then
    local pending = tonumber(f['pending']) or 0
    local gr = { name = name, last = f['last-delivered-id'], pending = pending, dropped = 0 }
    if pending > 0 then
      gr.id, gr.excl = redis.call('XPENDING', key, name)[2], true
    else
      gr.id, gr.excl = gr.last, false
    end
    local lag = tonumber(f['lag'])
    gr.backlog = lag and (math.min(lag, len) + pending) or -1
    gr.lagging = gr.backlog > max_lag
    groups[#groups + 1] = gr
  end
end

-- The lowest position over the groups that still hold trimming back.
local function holder_of()
  local h = nil
  for _, gr in ipairs(groups) do
    if not gr.lagging then
      local c = h and id_cmp(gr.id, h.id) or -1
      if c < 0 or (c == 0 and gr.excl and not h.excl) then h = gr end
    end
  end
  return h
end

local excess = len - maxlen
local n = excess < max_remove and excess or max_remove
local victims, holder = {}, nil
while excess > 0 do
  holder = holder_of()
  local bound = holder and ((holder.excl and '(' or '') .. holder.id) or '+'
  victims = {}
  if bound ~= '(0-0' then victims = redis.call('XRANGE', key, '-', bound, 'COUNT', n) end
  if #victims == n or not holder or holder.backlog >= 0 then break end
  -- No lag figure for the holder: what it has not acknowledged is what lies past the victims.
  holder.backlog = len - #victims
  if holder.backlog <= max_lag then break end
  holder.lagging = true
end
if excess > 0 and #victims < n and holder then out[4] = holder.name end

if #victims > 0 then
  -- MINID removes every entry older than the given id: the first entry after the victims, which
  -- exists because maxlen >= 1 keeps at least one.
  local after = redis.call('XRANGE', key, '(' .. victims[#victims][1], '+', 'COUNT', 1)
  if #after > 0 then
    local first, last = victims[1][1], victims[#victims][1]
    -- What each lagging group loses: the victims after its last-delivered id (never read by
    -- it) and those pending in it (read, not acknowledged).
    for _, gr in ipairs(groups) do
      if gr.lagging then
        for i = #victims, 1, -1 do
          if id_cmp(victims[i][1], gr.last) <= 0 then break end
          gr.dropped = gr.dropped + 1
        end
        if gr.pending > 0 then
          gr.dropped = gr.dropped + #redis.call('XPENDING', key, gr.name, first, last, #victims)
        end
      end
    end
    out[2] = redis.call('XTRIM', key, 'MINID', after[1][1])
    if #victims == max_remove and excess > max_remove then out[3] = 1 end
  end
end

for _, gr in ipairs(groups) do
  out[#out + 1] = gr.name
  out[#out + 1] = gr.backlog
  out[#out + 1] = gr.dropped
end
return out

#!lua flags=allow-oom
-- sweep_report.lua (after clock.lua and lib.lua): report the expired items of one (side,
-- digest) that got no edge, exactly once: only the holder of the current lease acts, and it
-- removes them.
--
-- allow-oom (the shebang, Redis 7): it runs over maxmemory too. It removes every expired item
-- it reads and appends at most one record per item, so it gives back what parking took, less
-- the records (which trimming bounds); refused, the items would stay until their hash expires
-- and their reports would be lost.
-- KEYS (one shard): 1 r:<digest>, 2 b:<digest>, 3 due, 4 out, 5 stats, 6 u:<digest>
-- ARGV: 1 member ("r<hex>" or "b<hex>"), 2 lease, 3 window ms,
--       4 report untagged platform manifests (0/1), 5 mapping ttl ms
-- u:<digest> remembers what was reported (for the mapping TTL): a push redelivered after its
-- report, or a build posted again, is parked again but not reported twice; the record id is
-- derived from the event, so consumers can deduplicate too.
-- Returns {registry items reported, build items reported}.
local L = lib(now)
local jstr, is_str, iso, enc_image, build_object, emit, is_untagged_manifest =
  L.jstr, L.is_str, L.iso, L.enc_image, L.build_object, L.emit, L.is_untagged_manifest

local member = ARGV[1]
local score = redis.call('ZSCORE', KEYS[3], member)
if not score or tonumber(score) ~= tonumber(ARGV[2]) then
  return { 0, 0 } -- rescheduled by a new event, or claimed again after our lease ran out
end
redis.call('ZREM', KEYS[3], member)

local side = string.sub(member, 1, 1)
local digest = 'sha256:' .. string.sub(member, 2)
local key = side == 'r' and KEYS[1] or KEYS[2]
local report_untagged = ARGV[4] == '1'
local window_s = string.format('%d', math.floor(tonumber(ARGV[3]) / 1000))
local reported, next_due = 0, nil

local items = redis.call('HGETALL', key)
for i = 1, #items, 2 do
  local field, item = items[i], cjson.decode(items[i + 1])
  if item.x > now then
    if not next_due or item.x < next_due then next_due = item.x end
  else
    redis.call('HDEL', key, field)
    redis.call('HINCRBY', KEYS[5], side, -1)
    local data
    if item.k then
      -- matched at some point: nothing to report
    elseif side == 'r' then
      if report_untagged or not is_untagged_manifest(item) then
        data = '{"side":"registry","digest":' .. jstr(digest) .. ',"image":'
          .. enc_image(field, item) .. ',"window_seconds":' .. window_s .. '}'
      end
    elseif report_untagged or item.r ~= 'p' then
      data = '{"side":"build","digest":' .. jstr(digest) .. ',"relation":'
        .. (item.r == 'p' and '"platform-manifest"' or '"image"')
        .. (is_str(item.i) and (',"index":' .. jstr(item.i)) or '')
        .. (is_str(item.n) and (',"name":' .. jstr(item.n)) or '')
        .. ',"build":' .. build_object(item, iso(item.t)) .. ',"window_seconds":' .. window_s .. '}'
    end
    if data then
      local what = side .. '|' .. field .. '|' .. (side == 'r' and tostring(item.e) or '')
      if redis.call('HSETNX', KEYS[6], what, '1') == 1 then
        redis.call('PEXPIRE', KEYS[6], tonumber(ARGV[5]))
        local id = redis.sha1hex('unmatched|' .. digest .. '|' .. what)
        emit(KEYS[4], 'mapping.unmatched.v1', id, digest, data)
        reported = reported + 1
      end
    end
  end
end
if next_due then redis.call('ZADD', KEYS[3], next_due, member) end
if side == 'r' then return { reported, 0 } end
return { 0, reported }

-- sweep_report.lua (after lib.lua): report one claimed item whose retention ended without an
-- edge, exactly once: only the holder of the current lease acts, and it removes the item.
--
-- KEYS (one shard): 1 r:<digest>, 2 b:<digest>, 3 due, 4 out, 5 stats
-- ARGV: 1 member ("r|<digest>|<location>" or "b|<digest>|<run key>"), 2 lease,
--       3 window ms, 4 report untagged manifests (0/1), 5 stream maxlen
-- Returns 0 (nothing reported), 1 (registry push reported), 2 (build reported).
local member = ARGV[1]
local score = redis.call('ZSCORE', KEYS[3], member)
if not score or tonumber(score) ~= tonumber(ARGV[2]) then
  return 0 -- re-parked (new expiry) or claimed again by someone else after our lease ran out
end
redis.call('ZREM', KEYS[3], member)

local side = string.sub(member, 1, 1)
local digest = string.sub(member, 3, 73)
local field = string.sub(member, 75)
local key = side == 'r' and KEYS[1] or KEYS[2]
local raw = redis.call('HGET', key, field)
if not raw then return 0 end
local item = cjson.decode(raw)
if item.exp > now then
  -- Re-parked after this expiry was scheduled; keep it for its new expiry.
  redis.call('ZADD', KEYS[3], item.exp, member)
  return 0
end
redis.call('HDEL', key, field)
redis.call('HINCRBY', KEYS[5], side, -1)
if item.matched then return 0 end

local window_s = string.format('%d', math.floor(tonumber(ARGV[3]) / 1000))
local id = redis.sha1hex('unmatched|' .. member .. '|' .. string.format('%d', item.arrived or 0))
local data
if side == 'r' then
  if ARGV[4] ~= '1' and is_untagged_manifest(item) then return 0 end
  data = '{"side":"registry","digest":' .. jstr(digest) .. ',"image":' .. enc_image(item)
    .. ',"window_seconds":' .. window_s .. '}'
else
  if ARGV[4] ~= '1' and item.relation == 'platform-manifest' then return 0 end
  local b = item.build
  b.built_at = iso(item.t)
  data = '{"side":"build","digest":' .. jstr(digest) .. ',"relation":' .. jstr(item.relation)
    .. (is_str(item.index) and (',"index":' .. jstr(item.index)) or '')
    .. (is_str(item.name) and (',"name":' .. jstr(item.name)) or '')
    .. ',"build":' .. enc_build(b) .. ',"window_seconds":' .. window_s .. '}'
end
emit(KEYS[4], ARGV[5], 'mapping.unmatched.v1', id, digest, data)
return side == 'r' and 1 or 2

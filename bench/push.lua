-- wrk script: ACR push webhooks, each with a digest never sent before, so that every request
-- parks a new event (no duplicate absorbed). Env: AUTH (Authorization value), SALT (8 hex
-- digits, different per run), MODE = "push" (default) or "join".
--   push: POST <url path> = the ACR push of digest k, k = 0, 1, 2, ...
--   join: alternately the ACR push of digest k (to ACR_PATH) and the build event of the same
--         digest (to BUILD_PATH, Authorization BUILD_AUTH): each pair joins into one edge,
--         in either order (wrk's connections race each other).
-- Digest: sha256:<SALT 8><wrk thread 4><k 8><44 fixed> = 64 lowercase hex digits; with
-- SPREAD=1 (bench/cluster.sh) sha256:<(k * 4099 + thread) mod 65536, 4><SALT 8><thread 4><k 8>
-- <40 fixed>, so that consecutive digests fall in different shards (the first 4 hex digits
-- choose the shard).
local salt = os.getenv("SALT") or "00000000"
local mode = os.getenv("MODE") or "push"
local spread = os.getenv("SPREAD") == "1"
local acr_path = os.getenv("ACR_PATH") or "/v1/registry/acr"
local build_path = os.getenv("BUILD_PATH") or "/v1/builds"
local auth = os.getenv("AUTH") or "Bearer dev-acr-token"
local build_auth = os.getenv("BUILD_AUTH") or "Bearer dev-ci-token"
local pad = string.rep("0123456789a", 4)

local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local push_head = '{"id":"bench-'
local push_mid = '","timestamp":"2026-11-28T14:02:11.483920117Z","action":"push","target":{'
  .. '"mediaType":"application/vnd.oci.image.index.v1+json","size":1609,"digest":"sha256:'
local push_tail = '","length":1609,"repository":"team/api","tag":"1.4.0"},"request":{'
  .. '"id":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0","host":"contoso.azurecr.io","method":"PUT",'
  .. '"useragent":"buildkit/v0.16"}}'
local build_head = '{"images":[{"name":"contoso.azurecr.io/team/api","digest":"sha256:'
local build_tail = '","tags":["1.4.0","latest"]}],"built_at":"2026-11-28T14:02:14Z",'
  .. '"run":{"provider":"github","repository":"acme/api","run_id":"12094877312",'
  .. '"run_attempt":"1","commit":"3e1c0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",'
  .. '"ref":"refs/heads/main","workflow":"release","actor":"mona"}}'

local push_hdr = { ["Content-Type"] = "application/json", ["Authorization"] = auth }
local build_hdr = { ["Content-Type"] = "application/json", ["Authorization"] = build_auth }
local n = 0
local prefix

function init(args)
  prefix = salt .. string.format("%04x", tonumber(tid) or 0)
end

local function digest(k)
  if spread then
    return string.format("%04x", (k * 4099 + (tonumber(tid) or 0)) % 65536) .. prefix
      .. string.format("%08x", k) .. pad:sub(1, 40)
  end
  return prefix .. string.format("%08x", k) .. pad
end

function request()
  local i = n
  n = n + 1
  if mode == "join" then
    local k = math.floor(i / 2)
    local d = digest(k)
    if i % 2 == 0 then
      return wrk.format("POST", acr_path, push_hdr, push_head .. d .. push_mid .. d .. push_tail)
    end
    return wrk.format("POST", build_path, build_hdr, build_head .. d .. build_tail)
  end
  local d = digest(i)
  return wrk.format("POST", nil, push_hdr, push_head .. d .. push_mid .. d .. push_tail)
end

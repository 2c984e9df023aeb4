-- clock.lua: "now" in ms, prepended by the build (correlator/CMakeLists.txt) to every script
-- that needs the time (after the script's shebang line, if any), and before lib.lua wherever
-- lib.lua is prepended.
--
-- Time is Redis's own clock (TIME), so every instance judges arrival and expiry alike. Reading
-- it before a write is allowed: Redis replicates a script's effects, not the script (by default
-- since Redis 5, always since 7), so a replica never reads its own clock for it.
local now
do
  local clock = redis.call('TIME')
  local us = tonumber(clock[2])
  now = tonumber(clock[1]) * 1000 + (us - us % 1000) / 1000 -- % is an operator, floor a call
end

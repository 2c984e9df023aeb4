-- clock.lua: "now" in ms, prepended by the build (correlator/CMakeLists.txt) to the scripts that
-- need the time (after the script's shebang line, if any), before lib.lua where both are: the
-- sweeper's, the queries', findings.lua and exposure.lua.
--
-- Time is Redis's own clock (TIME), so every instance sweeping or answering judges expiry alike.
-- park.lua does not take it: an event's arrival is digestmapd's clock (in park.lua's ARGV 5), which
-- saves the call a TIME and two tonumber (about a tenth of a push's cost to Redis); so the
-- instances' clocks and Redis's must agree (NTP), as the window already assumes of the payloads'
-- event times (docs/park-path.md "Whose clock"). Reading TIME before a write is allowed: Redis
-- replicates a script's effects, not the script (by default since Redis 5, always since 7), so a
-- replica never reads its own clock for it.
local now
do
  local clock = redis.call('TIME')
  local us = tonumber(clock[2])
  now = tonumber(clock[1]) * 1000 + (us - us % 1000) / 1000 -- % is an operator, floor a call
end

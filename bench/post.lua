-- wrk script of the nginx-204 ceiling: POST a fixed JSON body read from BODY_FILE (default: a
-- 600-byte ACR-shaped payload), with the same headers digestmap gets (AUTH = Authorization value).
local f = io.open(os.getenv("BODY_FILE") or "/dev/null", "r")
local body = f and f:read("*a") or ""
if f then f:close() end
if body == "" then body = string.rep("x", 600) end
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

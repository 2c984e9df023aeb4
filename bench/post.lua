-- wrk script of the nginx-204 and evhttp-204 ceilings: POST a fixed JSON body read from BODY_FILE
-- (unset: 600 bytes of "x"; set but unreadable or empty: an error, so that a wrong path cannot
-- quietly bench a different body), with the same headers digestmap gets (AUTH = Authorization).
local path = os.getenv("BODY_FILE")
local body = string.rep("x", 600)
if path and path ~= "" then
  local f = assert(io.open(path, "rb"), "post.lua: cannot read BODY_FILE " .. path)
  body = f:read("*a")
  f:close()
  assert(body and body ~= "", "post.lua: BODY_FILE " .. path .. " is empty")
end
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

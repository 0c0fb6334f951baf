-- A refresh that races a revocation of its session must not leave the
-- session alive: logout-others from another session, sent at the same moment
-- as the refresh, ends the refreshed session too, whichever arrives first.
local h = require "helpers"
local mig = require "helpers.migrate"
local cjson = require "cjson"

local EMAIL, PASSWORD = "race@example.com", "correct horse battery"

describe("a refresh racing logout-others", function()
  local ctx, srv, dir

  local function post(path, body, token)
    return srv:post_json(path, body, token)
  end

  local function login()
    local r = post("/api/v1/auth/login", { username = EMAIL, password = PASSWORD })
    assert.equal(200, r.status, r.body)
    return r.json
  end

  -- Both requests leave together (two curls in the background); the
  -- refresh's answer is returned.
  local function together(refresh_token, access_token)
    local base = "http://127.0.0.1:" .. srv.port .. "/api/v1/auth/"
    local out = dir .. "/refresh.json"
    h.run(("curl -s -o %s -X POST -H 'Content-Type: application/json' -d %s %srefresh & "
      .. "curl -s -o /dev/null -X POST -H %s %slogout-others & wait"):format(
      h.sh_quote(out), h.sh_quote(cjson.encode({ refresh_token = refresh_token })), base,
      h.sh_quote("Authorization: Bearer " .. access_token), base))
    local f = assert(io.open(out))
    local body = f:read("a")
    f:close()
    return body
  end

  setup(function()
    ctx = mig.new("session_race")
    ctx:copy_api()
    ctx:platform_user(EMAIL, PASSWORD)
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. h.sh_quote(dir)))
    srv = h.start({ scripts = ctx.scripts, database_url = ctx.app_url, env = {
      RUNTIME_AUTH_JWT_SECRET = "spec-secret-0123456789abcdef0123456789",
    } })
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
    os.execute("rm -rf " .. h.sh_quote(dir))
  end)

  it("never leaves the refreshed session alive", function()
    local caller = login()
    local survived, refreshed = 0, 0
    for i = 1, 40 do
      local victim = login()
      local body = together(victim.refresh_token, caller.access_token)
      local ok, res = pcall(cjson.decode, body)
      if ok and type(res) == "table" and res.refresh_token then
        refreshed = refreshed + 1
        local again = post("/api/v1/auth/refresh", { refresh_token = res.refresh_token })
        local me = srv:request({ path = "/api/v1/auth/me",
          headers = { Authorization = "Bearer " .. res.access_token } })
        if again.status ~= 401 or me.status ~= 401 then
          survived = survived + 1
          print(("round %d: the refreshed session survived (refresh %d, /me %d)"):format(i,
            again.status, me.status))
        end
      end
    end
    print(("%d of 40 refreshes went through before the logout"):format(refreshed))
    assert.equal(0, survived)
    -- the caller's own session goes on
    assert.equal(200, srv:request({ path = "/api/v1/auth/me",
      headers = { Authorization = "Bearer " .. caller.access_token } }).status)
  end)
end)

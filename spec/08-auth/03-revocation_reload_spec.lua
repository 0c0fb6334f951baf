-- A revocation made by this process holds at once, even while the periodic
-- reload of revocations is in flight: the reload must not drop a local
-- revocation its query could not see. Many live revocation rows make each
-- reload slow, so most logouts land while one runs.
local h = require "helpers"
local mig = require "helpers.migrate"

local EMAIL, PASSWORD = "reload@example.com", "correct horse battery"

describe("revocations during reloads", function()
  local ctx, srv

  local function post(path, body, token)
    return srv:post_json(path, body, token)
  end

  setup(function()
    ctx = mig.new("revocation_reload")
    ctx:copy_api()
    ctx:platform_user(EMAIL, PASSWORD)
    ctx:sql("INSERT INTO core.revocations (kind, jti, expires_at) SELECT 'jti', "
      .. "'filler-' || i, now() + interval '1 hour' FROM generate_series(1, 150000) i")
    srv = h.start({ scripts = ctx.scripts, database_url = ctx.app_url, env = {
      RUNTIME_AUTH_JWT_SECRET = "spec-secret-0123456789abcdef0123456789",
      RUNTIME_AUTH_REVOCATION_REFRESH_MS = "50",
    } })
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  it("keeps every logout in force at once", function()
    local s = post("/api/v1/auth/login", { username = EMAIL, password = PASSWORD }).json
    local lapsed = 0
    for i = 1, 30 do
      local r = post("/api/v1/auth/refresh", { refresh_token = s.refresh_token })
      assert.equal(200, r.status, r.body)
      s = r.json
      assert.equal(204, post("/api/v1/auth/logout", nil, s.access_token).status)
      -- A lapse shows once the reload in flight has swapped its state in,
      -- until the next one ends: look for a while, not just once.
      for k = 1, 8 do
        local me = srv:request({ path = "/api/v1/auth/me",
          headers = { Authorization = "Bearer " .. s.access_token } })
        if me.status ~= 401 then
          lapsed = lapsed + 1
          print(("logout %d lapsed (check %d): /me answered %d"):format(i, k, me.status))
          break
        end
      end
    end
    assert.equal(0, lapsed)
  end)
end)

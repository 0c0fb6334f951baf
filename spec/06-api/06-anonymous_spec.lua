-- Anonymous callers learn nothing about tenants, in every isolation mode:
-- /api/v1/info tells no tenant's name, settings or storage, and on the
-- public routes a tenant that does not exist (or is suspended) looks like
-- one that exists and refuses: the same status and the same body.
local api = require "helpers.api"
local h = require "helpers"

api.suite(_ENV, "anonymous callers and tenants", "anon", {}, function(t)
  local env, code = t.env, t.code
  local UNKNOWN = { "999999", "no_such_tenant" }

  local function known()
    return { tostring(env.tenants[code].id), code }
  end

  -- The answer without its request id, to compare answers.
  local function answer(method, path, tenant, body)
    local r = env:call(method, path, { tenant = tenant, body = body })
    local json = r.json
    if type(json) == "table" then
      json.request_id = nil
    end
    return { status = r.status, json = json, body = json and "" or r.body }
  end

  it("GET /api/v1/info tells nothing about the tenant, known or not", function()
    local none = answer("GET", "/api/v1/info")
    assert.equal(200, none.status)
    for _, tenant in ipairs(known()) do
      local r = env:call("GET", "/api/v1/info", { tenant = tenant })
      assert.equal(200, r.status, r.body)
      assert.is_nil(r.body:find(code, 1, true), r.body)
      assert.is_nil(r.body:find("admin_email", 1, true), r.body)
      assert.is_nil(r.json.tenant)
      assert.same(none, answer("GET", "/api/v1/info", tenant))
    end
    for _, tenant in ipairs(UNKNOWN) do
      assert.same(none, answer("GET", "/api/v1/info", tenant))
    end
  end)

  it("login: an unknown tenant answers like a wrong password", function()
    env:user(code)
    local body = { username = "user" .. env.n, password = "not-the-password-1" }
    local want = answer("POST", "/api/v1/auth/login", code, body)
    assert.equal(401, want.status)
    for _, tenant in ipairs(UNKNOWN) do
      assert.same(want, answer("POST", "/api/v1/auth/login", tenant, body))
    end
    -- the right password of that user at a tenant that does not exist
    body.password = api.PASSWORD
    assert.same(want, answer("POST", "/api/v1/auth/login", "no_such_tenant", body))
  end)

  it("register: an unknown tenant answers like one that is closed", function()
    local body = { email = "someone@example.test", password = api.PASSWORD }
    env.ctx:sql("UPDATE core.tenants SET settings = '{}' WHERE code = '" .. code .. "'")
    local want
    for _ = 1, 20 do -- the directory follows within 100 ms
      want = answer("POST", "/api/v1/auth/register", code, body)
      if want.status == 403 then
        break
      end
      h.sleep(0.1)
    end
    env.ctx:sql("UPDATE core.tenants SET settings = '{\"allow_registration\": true}' "
      .. "WHERE code = '" .. code .. "'")
    assert.equal(403, want.status)
    for _, tenant in ipairs(UNKNOWN) do
      assert.same(want, answer("POST", "/api/v1/auth/register", tenant, body))
    end
    h.sleep(0.4)
  end)

  it("refresh: an unknown tenant answers like another tenant", function()
    local _, s = env:login(nil, (function()
      local email = "anon" .. math.random(1e6) .. "@platform.test"
      assert.equal(201, env:call("POST", "/api/v1/auth/register", { body = {
        email = email, password = api.PASSWORD } }).status)
      return email
    end)())
    local body = { refresh_token = "rtr_" .. ("0"):rep(64) }
    local want = answer("POST", "/api/v1/auth/refresh", code, body)
    assert.equal(401, want.status)
    for _, tenant in ipairs(UNKNOWN) do
      assert.same(want, answer("POST", "/api/v1/auth/refresh", tenant, body))
      -- a live token is not spent by naming a tenant that does not exist
      assert.same(want, answer("POST", "/api/v1/auth/refresh", tenant,
        { refresh_token = s.refresh_token }))
    end
    assert.equal(200, env:call("POST", "/api/v1/auth/refresh", { body = {
      refresh_token = s.refresh_token } }).status)
  end)

  it("the OpenAPI document is the same for a known and an unknown tenant", function()
    local want = env:call("GET", "/openapi.json", { tenant = code })
    assert.equal(200, want.status)
    for _, tenant in ipairs(UNKNOWN) do
      local r = env:call("GET", "/openapi.json", { tenant = tenant })
      assert.equal(200, r.status)
      assert.same(want.json, r.json)
    end
  end)

  it("a suspended tenant looks like an unknown one to a login", function()
    env:user(code)
    local body = { username = "user" .. env.n, password = api.PASSWORD }
    local want = answer("POST", "/api/v1/auth/login", "no_such_tenant", body)
    env.ctx:sql("UPDATE core.tenants SET status = 'suspended' WHERE code = '" .. code .. "'")
    local got
    for _ = 1, 20 do
      got = answer("POST", "/api/v1/auth/login", code, body)
      if got.status ~= 200 then
        break
      end
      h.sleep(0.1)
    end
    env.ctx:sql("UPDATE core.tenants SET status = 'active' WHERE code = '" .. code .. "'")
    assert.same(want, got)
    h.sleep(0.4)
  end)
end)

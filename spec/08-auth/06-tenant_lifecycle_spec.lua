-- Sessions follow the tenant's and the user's life, in every isolation mode:
-- recreating a tenant's storage (user ids restart), deleting or purging it
-- ends every token and refresh token of it; a refresh checks the tenant's
-- and the user's status; a new e-mail address is not verified.
local api = require "helpers.api"
local h = require "helpers"

api.suite(_ENV, "sessions over the tenant's life", "life", {}, function(t)
  local env, code, call = t.env, t.code, t.call

  local function tenant_id()
    return env.tenants[code].id
  end

  local function refresh(token, tenant)
    return env:call("POST", "/api/v1/auth/refresh", { tenant = tenant,
      body = { refresh_token = token } })
  end

  local function me(token)
    return env:call("GET", "/api/v1/users/me", { token = token, tenant = code })
  end

  -- POST a platform route as a platform superuser.
  local function platform(method, path, body)
    return env:call(method, path, { token = env:platform_admin(), body = body })
  end

  -- Waits for the server's directory to show the tenant active again (a
  -- tenant route without a token: 401 once it resolves).
  local function until_active()
    for _ = 1, 40 do
      if env:call("GET", "/api/v1/users/me", { tenant = code }).status == 401 then
        return
      end
      h.sleep(0.1)
    end
  end

  -- A new user's login: the access token and the whole answer.
  local function session()
    env:user(code)
    return env:login(code, "user" .. env.n)
  end

  it("a new e-mail address is not verified (PATCH and PUT /users/me)", function()
    local token, id = env:user(code)
    for i, method in ipairs({ "PATCH", "PUT" }) do
      env:sql(code, "UPDATE users SET email_verified = true WHERE id = " .. id)
      local r = env:call(method, "/api/v1/users/me", { token = token, tenant = code,
        body = { email = ("New%d@Example.test"):format(i) } })
      assert.equal(200, r.status, r.body)
      assert.equal(("new%d@example.test"):format(i), r.json.email)
      assert.is_false(r.json.email_verified)
    end
    -- the same address again is no change
    env:sql(code, "UPDATE users SET email_verified = true WHERE id = " .. id)
    local r = env:call("PATCH", "/api/v1/users/me", { token = token, tenant = code,
      body = { email = "NEW2@example.test", full_name = "Same Address" } })
    assert.equal(200, r.status, r.body)
    assert.is_true(r.json.email_verified)
  end)

  it("an admin's change of a user's e-mail resets email_verified", function()
    local _, id = env:user(code)
    env:sql(code, "UPDATE users SET email_verified = true WHERE id = " .. id)
    local r = call("PATCH", "/api/v1/users/" .. id, { email = "moved@example.test" })
    assert.equal(200, r.status, r.body)
    assert.is_false(r.json.email_verified)
    -- unless the same request says the new address is verified
    r = call("PATCH", "/api/v1/users/" .. id, { email = "moved2@example.test",
      email_verified = true })
    assert.equal(200, r.status, r.body)
    assert.is_true(r.json.email_verified)
  end)

  it("a refresh checks the user's status", function()
    local _, s = session()
    -- changed behind the API's back: no revocation was made
    env:sql(code, "UPDATE users SET status = 'inactive' WHERE username = 'user" .. env.n
      .. "'")
    assert.equal(401, refresh(s.refresh_token, code).status)
    -- a platform user's too
    local email = "plain" .. env.n .. "@platform.test"
    assert.equal(201, env:call("POST", "/api/v1/auth/register", { body = { email = email,
      password = api.PASSWORD } }).status)
    local _, c = env:login(nil, email)
    env.ctx:sql("UPDATE core.users SET status = 'suspended' WHERE email = '" .. email .. "'")
    assert.equal(401, refresh(c.refresh_token).status)
  end)

  it("a refresh checks the tenant's status (and spends nothing while suspended)",
    function()
      local _, s = session()
      env.ctx:sql("UPDATE core.tenants SET status = 'suspended' WHERE id = " .. tenant_id())
      local suspended = refresh(s.refresh_token)
      env.ctx:sql("UPDATE core.tenants SET status = 'active' WHERE id = " .. tenant_id())
      local r = refresh(suspended.status == 200 and suspended.json.refresh_token
        or s.refresh_token)
      until_active()
      assert.equal(401, suspended.status, suspended.body)
      assert.equal(200, r.status, r.body)
    end)

  it("recreating the storage ends every token and refresh token of the tenant",
    function()
      local old_token, old_id = env:user(code)
      local _, old = env:login(code, "user" .. env.n)
      local r = platform("POST", "/api/v1/tenants/provision-schema",
        { tenant_id = tenant_id(), force_recreate = true })
      assert.equal(200, r.status, r.body)
      env.admins[code] = nil -- its super_admin is gone with the storage
      until_active()
      h.sleep(1.1) -- past the second of the cut-off (iat has one-second resolution)
      -- new users of the new storage: ids restart in its own tables, so
      -- one of them gets the old user's id
      local new_id = env:register(code, "newcomer")
      if t.mode ~= "shared" then
        assert.is_true(new_id < old_id)
        while new_id < old_id do
          new_id = env:register(code, "newcomer" .. new_id)
        end
        assert.equal(old_id, new_id)
      end
      for _, token in ipairs({ old_token, old.access_token }) do
        assert.equal(401, me(token).status)
        assert.equal(401, env:call("GET", "/api/v1/auth/me", { token = token,
          tenant = code }).status)
      end
      assert.equal(401, refresh(old.refresh_token, code).status)
      assert.equal(401, refresh(old.refresh_token).status)
      -- the new storage's users log in as usual
      local token = env:login(code, "newcomer")
      r = me(token)
      assert.equal(200, r.status, r.body)
      assert.equal("newcomer", r.json.username)
    end)

  it("deleting the tenant ends its sessions; activating it does not bring them back",
    function()
      local token, s = env:login(code, "newcomer")
      local r = platform("DELETE", "/api/v1/tenants/" .. tenant_id())
      assert.equal(200, r.status, r.body)
      assert.equal(401, refresh(s.refresh_token).status)
      r = platform("POST", "/api/v1/tenants/" .. tenant_id() .. "/activate")
      assert.equal(200, r.status, r.body)
      until_active()
      assert.equal(401, refresh(s.refresh_token).status)
      assert.equal(401, me(token).status)
    end)

  it("purging the tenant ends its sessions", function()
    h.sleep(1.1)
    local token, s = env:login(code, "newcomer")
    local r = platform("DELETE", "/api/v1/tenants/" .. tenant_id() .. "?purge=true")
    assert.equal(200, r.status, r.body)
    assert.equal(401, refresh(s.refresh_token).status)
    assert.equal(0, tonumber(env.ctx:sql("SELECT count(*) FROM core.refresh_tokens "
      .. "WHERE tenant_id = " .. tenant_id() .. " AND revoked_at IS NULL")))
    assert.is_string(token)
  end)
end)

-- A change to what a user may do holds at once, in every isolation mode:
-- the cached permission set (auth.permission_cache_s) is dropped in the
-- server that made the change at once, and on another replica within
-- auth.revocation_refresh_ms (100 ms here; a second is allowed).
local api = require "helpers.api"
local h = require "helpers"

api.suite(_ENV, "stale rights", "stale", {}, function(t)
  local env, code, call = t.env, t.code, t.call
  local replica

  setup(function()
    replica = env:replica()
  end)

  teardown(function()
    if replica then
      replica.srv:stop()
    end
  end)

  -- The status of GET path with token on server s (env or replica).
  local function status(s, path, token)
    return s:call("GET", path, { token = token, tenant = code }).status
  end

  -- Waits up to about a second for the status of GET path on s to be want.
  local function becomes(s, path, token, want)
    local got
    for _ = 1, 20 do
      got = status(s, path, token)
      if got == want then
        return got
      end
      h.sleep(0.05)
    end
    return got
  end

  it("clearing is_superuser takes the rights away at once, on every replica", function()
    local token, id = env:user(code)
    local r = call("PATCH", "/api/v1/users/" .. id, { is_superuser = true })
    assert.equal(200, r.status, r.body)
    -- both servers cache the superuser's set
    assert.equal(200, status(env, "/api/v1/permissions", token))
    assert.equal(200, status(replica, "/api/v1/permissions", token))
    r = call("PATCH", "/api/v1/users/" .. id, { is_superuser = false })
    assert.equal(200, r.status, r.body)
    assert.equal(403, status(env, "/api/v1/permissions", token))
    assert.equal(403, becomes(replica, "/api/v1/permissions", token, 403))
  end)

  it("removing a role takes its rights away at once, on every replica", function()
    local token, id = env:user(code, { "manager" })
    local role = env:sql(code, "SELECT id FROM roles WHERE code = 'manager'")
    assert.equal(200, status(env, "/api/v1/roles", token))
    assert.equal(200, status(replica, "/api/v1/roles", token))
    assert.equal(204, call("DELETE", "/api/v1/users/" .. id .. "/roles/" .. role).status)
    assert.equal(403, status(env, "/api/v1/roles", token))
    assert.equal(403, becomes(replica, "/api/v1/roles", token, 403))
  end)

  it("removing a permission from a role takes it away at once, on every replica",
    function()
      local r = call("POST", "/api/v1/roles", { code = "reader", name = "Reader",
        priority = 5 })
      assert.equal(201, r.status, r.body)
      local role = r.json.id
      local perm = env:sql(code, "SELECT id FROM permissions WHERE code = 'board_read'")
      assert.equal(201, call("POST", "/api/v1/roles/" .. role .. "/permissions",
        { permission_id = tonumber(perm) }).status)
      local token = env:user(code, { "reader" })
      assert.equal(200, status(env, "/api/v1/boards", token))
      assert.equal(200, status(replica, "/api/v1/boards", token))
      assert.equal(204, call("DELETE", "/api/v1/roles/" .. role .. "/permissions/" .. perm)
        .status)
      assert.equal(403, status(env, "/api/v1/boards", token))
      assert.equal(403, becomes(replica, "/api/v1/boards", token, 403))
    end)

  it("deactivating a user ends its access at once, on every replica", function()
    local token, id = env:user(code, { "viewer" })
    assert.equal(200, status(env, "/api/v1/users", token))
    assert.equal(200, status(replica, "/api/v1/users", token))
    assert.equal(200, call("PATCH", "/api/v1/users/" .. id, { status = "inactive" }).status)
    assert.equal(401, status(env, "/api/v1/users", token))
    assert.equal(401, becomes(replica, "/api/v1/users", token, 401))
  end)
end)

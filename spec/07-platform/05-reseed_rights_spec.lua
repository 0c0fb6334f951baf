-- Re-seeding a tenant (POST /api/v1/tenants/:id/seed) changes the system
-- roles' permissions when a seed changed: the tenant's cached permission
-- sets go at once, in every isolation mode, as for a change through the
-- roles API (rt.auth.rbac_changed for that tenant).
local platform = require "helpers.platform"
local h = require "helpers"

describe("re-seeding and cached permissions", function()
  local env, admin
  local PASSWORD = "viewer-password-1"
  local tenants = {}

  setup(function()
    env = platform.new("platform_reseed")
    admin = env:admin_token()
    for _, mode in ipairs({ "shared", "schema", "database" }) do
      local code = "reseed_" .. mode
      if mode == "database" then
        env:owns_database(code)
      end
      local r = env:call("POST", "/api/v1/tenants", admin, { code = code,
        isolation = mode, admin_email = "boss@" .. code .. ".test",
        admin_password = "boss-password-1" })
      assert.equal(201, r.status, r.body)
      local boss = env:tenant_login(code, "boss@" .. code .. ".test", "boss-password-1")
      local hs = { ["X-Tenant-Id"] = code }
      r = env:call("POST", "/api/v1/users", boss, { email = "viewer@" .. code .. ".test",
        password = PASSWORD }, hs)
      assert.equal(201, r.status, r.body)
      assert.equal(201, env:call("POST", "/api/v1/users/" .. r.json.id .. "/roles", boss,
        { role_code = "viewer" }, hs).status)
      local viewer = env:login("viewer@" .. code .. ".test", PASSWORD, code)
      -- cached: the viewer reads boards through the seed's viewer role
      assert.equal(200, env:call("GET", "/api/v1/boards", viewer, nil, hs).status)
      tenants[mode] = { code = code, viewer = viewer, id = tonumber(env.ctx:sql(
        "SELECT id FROM core.tenants WHERE code = '" .. code .. "'")) }
    end
    -- The role assignments above left 'rbac' rows that make every reload
    -- drop those users' sets for a while (auth.c RBAC_ROW_S): wait them
    -- out, then fill the caches again.
    h.sleep(10.5)
    for _, t in pairs(tenants) do
      assert.equal(200, env:call("GET", "/api/v1/boards", t.viewer, nil,
        { ["X-Tenant-Id"] = t.code }).status)
    end
    -- the seed now leaves board_read out of the viewer role
    local path = env.ctx.scripts .. "/seeds/0002_roles.lua"
    local text = assert(h.read_all(path))
    local edited, n = text:gsub('"board_read", "category_read" }', '"category_read" }')
    assert.equal(1, n)
    local f = assert(io.open(path, "w"))
    f:write(edited)
    f:close()
  end)

  teardown(function()
    if env then
      env:destroy()
    end
  end)

  for _, mode in ipairs({ "shared", "schema", "database" }) do
    it("drops the cached sets at once (" .. mode .. ")", function()
      local t = tenants[mode]
      local r = env:call("POST", "/api/v1/tenants/" .. t.id .. "/seed", admin)
      assert.equal(200, r.status, r.body)
      assert.is_true(r.json.applied >= 1)
      assert.equal(403, env:call("GET", "/api/v1/boards", t.viewer, nil,
        { ["X-Tenant-Id"] = t.code }).status)
    end)
  end
end)

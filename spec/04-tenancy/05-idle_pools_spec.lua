-- The pool of a database-mode tenant is closed with its connections once no
-- request has used it for database.idle_pool_ms, and made again on the
-- tenant's next request.
local h = require "helpers"
local mig = require "helpers.migrate"

describe("idle tenant pools", function()
  local ctx, srv

  local function connections()
    return tonumber(h.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = "
      .. "'t_idle_db' AND usename = 'rt_app'", h.admin_url))
  end

  local function whoami()
    return srv:request({ path = "/t/whoami", headers = { ["X-Tenant-Id"] = "idle_db" } })
  end

  setup(function()
    ctx = mig.new("idlepools")
    assert(h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
      .. h.sh_quote(ctx.tenant_dir) .. "/"))
    assert.equal(0, ctx:migrate("").code)
    ctx.databases[#ctx.databases + 1] = "t_idle_db"
    local res = ctx:tenant_cmd({ "create", "idle_db", "--isolation", "database" })
    assert.equal(0, res.code, mig.explain(res))
    srv = h.start({
      database_url = ctx.app_url,
      env = {
        RUNTIME_DATABASE_IDLE_POOL_MS = "300",
        RUNTIME_TENANCY_REFRESH_MS = "100",
      },
    })
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  it("closes the connections of an unused tenant database and reconnects", function()
    local r = whoami()
    assert.equal(200, r.status)
    assert.equal("idle_db", r.json.tenant.code)
    assert.is_true(connections() >= 1)
    -- closed within a few idle periods, with no request in between
    local closed = false
    for _ = 1, 50 do
      h.sleep(0.1)
      if connections() == 0 then
        closed = true
        break
      end
    end
    assert.is_true(closed, "the idle pool's connections are still open")
    -- the tenant still works: its next request makes the pool again
    r = whoami()
    assert.equal(200, r.status)
    assert.equal("idle_db", r.json.tenant.code)
    assert.equal('"public"', r.json.db.search_path)
    assert.is_true(connections() >= 1)
  end)

  it("keeps the pool of a tenant that is in use", function()
    -- requests every 100 ms (a third of idle_pool_ms) for a second
    assert.equal(200, whoami().status)
    for _ = 1, 10 do
      h.sleep(0.1)
      assert.equal(200, whoami().status)
      assert.is_true(connections() >= 1)
    end
  end)
end)

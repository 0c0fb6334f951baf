-- The server follows the tenant directory: any committed change of a tenant's
-- row (settings, status, domains) is served within tenancy.refresh_ms,
-- whether or not the UPDATE touched updated_at, and whatever the order in
-- which concurrent transactions commit.
local h = require "helpers"
local mig = require "helpers.migrate"

describe("tenant directory refresh", function()
  local ctx, srv

  local function settings(code)
    local r = srv:request({ path = "/t/whoami", headers = { ["X-Tenant-Id"] = code } })
    return r.status, r.json and r.json.tenant and r.json.tenant.settings
  end

  -- Polls until check() is true or about two seconds (20 refresh intervals)
  -- have passed.
  local function eventually(check)
    for _ = 1, 40 do
      if check() then
        return true
      end
      h.sleep(0.05)
    end
    return check()
  end

  setup(function()
    ctx = mig.new("dir_refresh")
    assert.equal(0, ctx:migrate("").code)
    ctx:add_tenants({ "acme", "beta", "gamma" })
    srv = h.start({ database_url = ctx.app_url,
      env = { RUNTIME_TENANCY_REFRESH_MS = "100" } })
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  it("raises the row's revision and updated_at on changes, not on bookkeeping", function()
    local before = ctx:rows("SELECT revision, updated_at FROM core.tenants "
      .. "WHERE code = 'gamma'")[1]
    ctx:sql("UPDATE core.tenants SET schema_version = 7 WHERE code = 'gamma'")
    local same = ctx:rows("SELECT revision, updated_at FROM core.tenants "
      .. "WHERE code = 'gamma'")[1]
    assert.same(before, same)
    ctx:sql("UPDATE core.tenants SET name = 'Gamma Inc' WHERE code = 'gamma'")
    local after = ctx:rows("SELECT revision, updated_at FROM core.tenants "
      .. "WHERE code = 'gamma'")[1]
    assert.equal(before.revision + 1, after.revision)
    assert.are_not.equal(before.updated_at, after.updated_at)
  end)

  it("sees settings changed without touching updated_at", function()
    local status, s = settings("acme")
    assert.equal(200, status)
    assert.is_nil(s.plan)
    ctx:sql([[UPDATE core.tenants SET settings = '{"plan": "gold"}' WHERE code = 'acme']])
    assert.is_true(eventually(function()
      local _, now = settings("acme")
      return now.plan == "gold"
    end))
  end)

  it("sees a status change without touching updated_at", function()
    ctx:sql("UPDATE core.tenants SET status = 'suspended' WHERE code = 'beta'")
    assert.is_true(eventually(function()
      return settings("beta") == 403
    end))
    ctx:sql("UPDATE core.tenants SET status = 'active' WHERE code = 'beta'")
    assert.is_true(eventually(function()
      return settings("beta") == 200
    end))
  end)

  it("sees a transaction that started first but committed last", function()
    -- A starts first (its now() is older), B commits while A still runs.
    local a = os.tmpname()
    h.run("(psql -X -q -v ON_ERROR_STOP=1 " .. h.sh_quote(ctx.owner_url) .. " -c "
      .. h.sh_quote([[BEGIN; UPDATE core.tenants SET settings = '{"order": "a"}'
        WHERE code = 'acme'; SELECT pg_sleep(1.5); COMMIT;]]) .. " >/dev/null 2>&1; "
      .. "echo done >" .. h.sh_quote(a) .. ") </dev/null >/dev/null 2>&1 &")
    assert.is_true(eventually(function() -- A has updated its row and sleeps
      return ctx:sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
        .. "'%pg_sleep(1.5)%' AND state = 'active' AND pid <> pg_backend_pid()") == "1"
    end))
    ctx:sql([[UPDATE core.tenants SET settings = '{"order": "b"}' WHERE code = 'gamma']])
    assert.is_true(eventually(function()
      local _, s = settings("gamma")
      return s.order == "b"
    end))
    assert.is_true(eventually(function()
      return (h.read_all(a) or "") ~= ""
    end))
    os.remove(a)
    assert.is_true(eventually(function()
      local _, s = settings("acme")
      return s.order == "a"
    end))
  end)

  it("still follows a directory not yet migrated to revisions", function()
    local res = ctx:migrate({ "down", "--core", "--to", "3" })
    assert.equal(0, res.code, mig.explain(res))
    ctx:sql([[UPDATE core.tenants SET settings = '{"old": true}', updated_at = now()
      WHERE code = 'gamma']])
    assert.is_true(eventually(function()
      local _, s = settings("gamma")
      return s.old == true
    end))
    res = ctx:migrate({ "up", "--core" })
    assert.equal(0, res.code, mig.explain(res))
  end)
end)

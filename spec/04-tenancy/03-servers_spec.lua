-- Tenants placed on another configured server: provisioning, migrations,
-- seeds and requests all reach that server. The second "server" is a second
-- database on the same PostgreSQL: the runtime only sees connection URLs.
local h = require "helpers"
local mig = require "helpers.migrate"

describe("multiple servers", function()
  local ctx, srv, second_owner, second_app

  setup(function()
    ctx = mig.new("servers")
    ctx:create_database("rt_mig_servers_2")
    second_owner = mig.db_url(h.owner_url, "rt_mig_servers_2")
    second_app = mig.db_url(h.app_url, "rt_mig_servers_2")
    mig.admin("GRANT CONNECT ON DATABASE rt_mig_servers_2 TO rt_app")
    assert(h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
      .. h.sh_quote(ctx.tenant_dir) .. "/ && mkdir -p " .. h.sh_quote(ctx.scripts)
      .. "/seeds && cp " .. h.sh_quote(h.root .. "/scripts/seeds") .. "/*.lua "
      .. h.sh_quote(ctx.scripts) .. "/seeds/"))
    h.write_all(ctx.cfg, string.format(
      "return { scripts = { dir = %q }, servers = { second = { url = %q, owner_url = %q } } }\n",
      ctx.scripts, second_app, second_owner))
    assert.equal(0, ctx:migrate("").code)
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    mig.drop_database("t_far_db")
    ctx:destroy()
  end)

  it("provisions schema and database tenants on the named server", function()
    local res = ctx:tenant_cmd({ "create", "far", "--server", "second" })
    assert.equal(0, res.code, mig.explain(res))
    res = ctx:tenant_cmd({ "create", "far_db", "--server", "second", "--isolation",
      "database" })
    assert.equal(0, res.code, mig.explain(res))
    -- the schema is on the second server, not the main one
    assert.equal("1", h.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 't_far'",
      second_owner))
    assert.equal("0", h.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 't_far'",
      ctx.owner_url))
    assert.equal("second", h.psql("SELECT server FROM core.tenants WHERE code = 'far'",
      ctx.owner_url))
  end)

  it("migrates tenants on every server in one fleet run", function()
    local res = ctx:migrate("status --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.equal(0, res.json.fleet.pending)
    assert.equal(2, res.json.fleet.total)
  end)

  it("refuses an unknown server", function()
    local res = ctx:tenant_cmd({ "create", "lost", "--server", "mars" })
    assert.equal(1, res.code)
    assert.matches("unknown server", res.err)
  end)

  it("serves requests from the tenant's server", function()
    srv = h.start({
      database_url = ctx.app_url,
      extra = string.format("servers = { second = { url = %q, owner_url = %q } }",
        second_app, second_owner),
    })
    for _, code in ipairs({ "far", "far_db" }) do
      local r = srv:request({ method = "POST", path = "/t/users",
        headers = { ["X-Tenant-Id"] = code, ["Content-Type"] = "application/json" },
        body = '{"username":"u","email":"u@example.test"}' })
      assert.equal(201, r.status, code)
      local list = srv:request({ path = "/t/users", headers = { ["X-Tenant-Id"] = code } })
      assert.equal(1, #list.json.users)
    end
    local id = h.psql("SELECT id FROM core.tenants WHERE code = 'far'", ctx.owner_url)
    assert.equal("1", h.psql("SET app.tenant_id = '" .. id .. "'; "
      .. "SELECT count(*) FROM t_far.users", second_owner))
  end)
end)

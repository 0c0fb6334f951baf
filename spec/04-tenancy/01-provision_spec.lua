-- `runtime tenant`: provisioning in all three isolation modes with the real
-- tenant migrations, compensation on failure, lifecycle commands, and the
-- isolation posture of the request role.
local h = require "helpers"
-- the number of files in scripts/migrations/tenant
local mig = require "helpers.migrate"
local TENANT_HEAD = tostring(mig.TENANT_HEAD)

local real_tenant_steps = h.root .. "/scripts/migrations/tenant"
local real_seeds = h.root .. "/scripts/seeds"

describe("runtime tenant", function()
  local ctx

  local function psql(sql)
    return h.psql(sql, ctx.owner_url)
  end

  local function app_psql(sql)
    return h.psql(sql, ctx.app_url)
  end

  local function status_of(code)
    return psql("SELECT status FROM core.tenants WHERE code = '" .. code .. "'")
  end

  setup(function()
    ctx = mig.new("tenancy")
    assert(h.run("cp " .. h.sh_quote(real_tenant_steps) .. "/*.lua "
      .. h.sh_quote(ctx.tenant_dir) .. "/ && mkdir -p " .. h.sh_quote(ctx.scripts)
      .. "/seeds && cp " .. h.sh_quote(real_seeds) .. "/*.lua " .. h.sh_quote(ctx.scripts)
      .. "/seeds/"))
    local res = ctx:migrate("")
    assert.equal(0, res.code, mig.explain(res))
  end)

  teardown(function()
    pcall(h.psql, "ALTER ROLE rt_owner RESET rt.fail_boom", h.admin_url)
    for _, db in ipairs({ "t_acme_db", "t_boom_db" }) do
      mig.drop_database(db)
    end
    ctx:destroy()
  end)

  for _, mode in ipairs({ "schema", "database", "shared" }) do
    it("provisions a " .. mode .. " tenant to active with its tables", function()
      local code = mode == "database" and "acme_db" or "acme_" .. mode
      local res = ctx:tenant_cmd({ "create", code, "--isolation", mode, "--name", "Acme",
        "--json" })
      assert.equal(0, res.code, mig.explain(res))
      assert.equal("active", res.json.status)
      assert.equal("active", status_of(code))
      -- at head in the directory (a shared tenant follows the shared target)
      assert.equal(TENANT_HEAD, psql("SELECT schema_version FROM core.tenants WHERE code = '"
        .. code .. "'"))
      -- the nine tenant tables and the seed ledger
      local where = ({
        schema = "schemaname = 't_" .. code .. "'",
        shared = "schemaname = 'shared'",
      })[mode]
      if where then
        assert.equal("10", psql("SELECT count(*) FROM pg_tables WHERE " .. where
          .. " AND tablename <> 'schema_migrations'"))
      else
        local url = mig.db_url(h.owner_url, "t_" .. code)
        assert.equal("10", h.psql("SELECT count(*) FROM pg_tables WHERE schemaname = "
          .. "'public' AND tablename <> 'schema_migrations'", url))
      end
    end)
  end

  -- Runs sql as the owner inside the tenant's scope (RLS is forced for the
  -- owner too).
  local function in_tenant(code, sql)
    local id = psql("SELECT id FROM core.tenants WHERE code = '" .. code .. "'")
    local schema = psql("SELECT CASE isolation WHEN 'shared' THEN 'shared' "
      .. "ELSE schema_name END FROM core.tenants WHERE code = '" .. code .. "'")
    return psql("SET app.tenant_id = '" .. id .. "'; SET search_path = " .. schema
      .. "; " .. sql)
  end

  it("seeds the defaults of the seed documents at provisioning", function()
    for _, code in ipairs({ "acme_schema", "acme_shared" }) do
      assert.equal("40", in_tenant(code, "SELECT count(*) FROM permissions"))
      assert.equal("super_admin:40,admin:33,manager:22,editor:8,viewer:4",
        in_tenant(code, "SELECT string_agg(code || ':' || n, ',' ORDER BY priority DESC) "
          .. "FROM (SELECT r.code, r.priority, count(rp.id) AS n FROM roles r "
          .. "LEFT JOIN role_permissions rp ON rp.role_id = r.id GROUP BY 1, 2) x"))
      assert.equal("all_members,premium_users,regular_users,vip_users",
        in_tenant(code, "SELECT string_agg(code, ',' ORDER BY code) FROM user_groups"))
      assert.equal("4", in_tenant(code, "SELECT count(*) FROM menus m JOIN menus p "
        .. "ON p.id = m.parent_id WHERE p.code = 'admin'"))
    end
  end)

  it("skips unchanged seeds and re-applies a changed one", function()
    local res = ctx:migrate({ "--tenant", "acme_schema", "--json" }, nil, "seed")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ code = "acme_schema", applied = 0, skipped = 4, ok = true },
      res.json.tenants[1])
    -- The viewer loses category_read in a changed default.
    local path = ctx.scripts .. "/seeds/0002_roles.lua"
    local src = h.read_all(path)
    h.write_all(path, (src:gsub('"board_read", "category_read" }', '"board_read" }')))
    res = ctx:migrate({ "--all", "--json" }, nil, "seed")
    assert.equal(0, res.code, mig.explain(res))
    assert.equal("3", in_tenant("acme_schema", "SELECT count(*) FROM role_permissions rp "
      .. "JOIN roles r ON r.id = rp.role_id WHERE r.code = 'viewer'"))
    h.write_all(path, src)
    assert.equal(0, ctx:migrate({ "--all" }, nil, "seed").code)
  end)

  it("refuses a duplicate code as a conflict and keeps the first", function()
    local res = ctx:tenant_cmd({ "create", "acme_schema" })
    assert.equal(1, res.code)
    assert.matches("already exists", res.err)
    assert.equal("active", status_of("acme_schema"))
  end)

  it("refuses bad codes before any SQL", function()
    for _, bad in ipairs({ "Acme", "a", "1abc", "a;drop", "a b", "a/b", "a@b", "a'b",
      string.rep("a", 41) }) do
      local res = ctx:tenant_cmd({ "create", bad })
      assert.equal(2, res.code, bad)
    end
    assert.equal("0", psql("SELECT count(*) FROM core.tenants WHERE code !~ '^[a-z]'"))
  end)

  it("compensates a failed provisioning and lets a retry succeed", function()
    -- A step that fails for boom_* tenants while a role setting is on (a
    -- setting reaches every database; a marker table would not).
    ctx:write_step("tenant", ("%04d_maybe_fail.lua"):format(tonumber(TENANT_HEAD) + 1), [=[
return {
  up = function(m)
    local rows = m:query("SELECT current_setting('rt.fail_boom', true) = 'on' AS f")
    if m.tenant and m.tenant.code:find("^boom") and rows[1].f == true then
      error("provisioning fault for " .. m.tenant.code)
    end
  end,
  down = function() end,
}
]=])
    assert.equal(0, ctx:migrate("").code)
    h.psql("ALTER ROLE rt_owner SET rt.fail_boom = 'on'", h.admin_url)
    for _, mode in ipairs({ "schema", "database" }) do
      local code = mode == "schema" and "boom_schema" or "boom_db"
      local res = ctx:tenant_cmd({ "create", code, "--isolation", mode })
      assert.equal(1, res.code)
      assert.matches("provisioning fault", res.err)
      assert.equal("failed", status_of(code))
      assert.matches("provisioning fault",
        psql("SELECT status_reason FROM core.tenants WHERE code = '" .. code .. "'"))
      -- nothing half-made: no schema, no database
      assert.equal("0", psql("SELECT count(*) FROM pg_namespace WHERE nspname = 't_"
        .. code .. "'"))
      assert.equal("0", psql("SELECT count(*) FROM pg_database WHERE datname = 't_"
        .. code .. "'"))
    end
    h.psql("ALTER ROLE rt_owner RESET rt.fail_boom", h.admin_url)
    for _, code in ipairs({ "boom_schema", "boom_db" }) do
      local res = ctx:tenant_cmd({ "create", code, "--isolation",
        code == "boom_db" and "database" or "schema" })
      assert.equal(0, res.code, mig.explain(res))
      assert.equal("active", status_of(code))
    end
  end)

  it("leaves storage it did not create alone when creating storage fails", function()
    psql("CREATE SCHEMA t_clash; CREATE TABLE t_clash.keep (id int)")
    local res = ctx:tenant_cmd({ "create", "clash" })
    assert.equal(1, res.code)
    assert.matches("already exists", res.err)
    assert.equal("failed", status_of("clash"))
    assert.equal("1", psql("SELECT count(*) FROM pg_tables WHERE schemaname = 't_clash' "
      .. "AND tablename = 'keep'"))
    psql("DROP SCHEMA t_clash CASCADE")
    assert.equal(0, ctx:tenant_cmd({ "create", "clash" }).code)
  end)

  it("compensates a failing seed", function()
    local path = ctx.scripts .. "/seeds/0005_fail.lua"
    h.write_all(path, [[
return {
  run = function(s)
    if s.tenant.code == "seedfail" then
      error("seed fault")
    end
  end,
}
]])
    local res = ctx:tenant_cmd({ "create", "seedfail" })
    os.remove(path)
    assert.equal(1, res.code)
    assert.matches("seed fault", res.err)
    assert.equal("failed", status_of("seedfail"))
    assert.equal("0", psql("SELECT count(*) FROM pg_namespace WHERE nspname = 't_seedfail'"))
    assert.equal(0, ctx:tenant_cmd({ "create", "seedfail" }).code)
  end)

  it("suspends, activates, soft-deletes and purges", function()
    assert.equal(0, ctx:tenant_cmd({ "create", "life" }).code)
    assert.equal(0, ctx:tenant_cmd({ "suspend", "life" }).code)
    assert.equal("suspended", status_of("life"))
    assert.equal(0, ctx:tenant_cmd({ "activate", "life" }).code)
    assert.equal("active", status_of("life"))
    assert.equal(0, ctx:tenant_cmd({ "delete", "life" }).code)
    assert.equal("deleted", status_of("life"))
    assert.equal(0, ctx:tenant_cmd({ "purge", "life" }).code)
    assert.equal("", status_of("life"))
    assert.equal("0", psql("SELECT count(*) FROM pg_namespace WHERE nspname = 't_life'"))
    assert.equal(1, ctx:tenant_cmd({ "suspend", "life" }).code)
  end)

  it("re-provisions with --force", function()
    local url = ctx.owner_url
    local id = psql("SELECT id FROM core.tenants WHERE code = 'acme_schema'")
    -- RLS is forced for the owner too: the insert needs the tenant's scope.
    h.psql("SET search_path = t_acme_schema; SET app.tenant_id = '" .. id .. "'; "
      .. "INSERT INTO boards (code, name) VALUES ('b', 'B')", url)
    local res = ctx:tenant_cmd({ "create", "acme_schema", "--force" })
    assert.equal(0, res.code, mig.explain(res))
    assert.equal("0", psql("SELECT count(*) FROM t_acme_schema.boards"))
  end)

  it("creates and lists 200 tenants", function()
    local codes = mig.codes("many", 200)
    for _, code in ipairs(codes) do
      local res = ctx:tenant_cmd({ "create", code })
      assert.equal(0, res.code, mig.explain(res))
    end
    local res = ctx:tenant_cmd({ "list", "--json" })
    assert.equal(0, res.code)
    local seen = {}
    for _, t in ipairs(res.json) do
      seen[t.code] = t.status
    end
    for _, code in ipairs(codes) do
      assert.equal("active", seen[code])
    end
    local show = ctx:tenant_cmd({ "show", codes[1], "--json" })
    assert.equal(codes[1], show.json.code)
    assert.equal("t_" .. codes[1], show.json.schema_name)
  end)

  it("keeps the request role unprivileged and every tenant table under forced RLS", function()
    assert.equal("false|false", app_psql("SELECT rolsuper || '|' || rolbypassrls FROM pg_roles "
      .. "WHERE rolname = current_user"))
    assert.equal("0", app_psql("SELECT count(*) FROM pg_class c JOIN pg_roles r "
      .. "ON r.oid = c.relowner WHERE r.rolname = current_user"))
    assert.equal("0", psql([[
      SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND (n.nspname = 'shared' OR n.nspname LIKE 't\_%')
        AND c.relname <> 'schema_migrations'
        AND NOT (c.relrowsecurity AND c.relforcerowsecurity)]]))
  end)

  it("never shows one tenant's rows to another, in shared tables too", function()
    local a = psql("SELECT id FROM core.tenants WHERE code = 'acme_shared'")
    assert.equal(0, ctx:tenant_cmd({ "create", "other_shared", "--isolation", "shared" }).code)
    local b = psql("SELECT id FROM core.tenants WHERE code = 'other_shared'")
    -- The owner (seeds, migrations) scopes itself with app.tenant_id.
    local function as(run, tenant, sql)
      return run("BEGIN; SELECT set_config('search_path', 'shared', true), "
        .. "set_config('app.tenant_id', '" .. tenant .. "', true); "
        .. sql .. "; COMMIT")
    end
    as(psql, a, "INSERT INTO users (username, email) VALUES ('same', 'same@x.io')")
    as(psql, b, "INSERT INTO users (username, email) VALUES ('same', 'same@x.io')")
    assert.equal("1", as(psql, a, "SELECT count(*) FROM users"):match("(%d+)%s*$"))
    assert.equal("1", as(psql, b, "SELECT count(*) FROM users"):match("(%d+)%s*$"))
    -- The request role is trusted with nothing but a scope the runtime
    -- signed (docs/SECURITY.md): app.tenant_id alone shows and writes nothing.
    assert.equal("0", as(app_psql, a, "SELECT count(*) FROM users"):match("(%d+)%s*$"))
    local out, ok = h.run("psql -X -q -A -t " .. h.sh_quote(ctx.app_url) .. " -c "
      .. h.sh_quote("BEGIN; SELECT set_config('app.tenant_id', '" .. a .. "', true); "
      .. "INSERT INTO shared.users (username, email) VALUES ('x', 'x@x.io'); COMMIT") .. " 2>&1")
    assert.is_falsy(ok)
    assert.matches("row%-level security", out)
    assert.equal("0", app_psql("SELECT count(*) FROM shared.users"))
  end)
end)

-- Pre-migrated storage for new tenants: spare schemas renamed into place and
-- a template database cloned, both made by the migration engine from the
-- current files (same ledger as a tenant migrated in place), and never taken
-- once the files have changed.
local h = require "helpers"
local mig = require "helpers.migrate"

-- a step after the real ones
local NOTES_STEP = ("%04d_notes.lua"):format(mig.TENANT_HEAD + 1)

describe("pre-made tenant storage", function()
  local ctx

  local function psql(sql, url)
    return h.psql(sql, url or ctx.owner_url)
  end

  local function spares()
    return psql("SELECT coalesce(string_agg(nspname, ',' ORDER BY nspname), '') "
      .. "FROM pg_namespace WHERE nspname LIKE 'rt\\_spare\\_%'")
  end

  -- This installation's: named after its directory database.
  local function templates()
    return psql("SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') "
      .. "FROM pg_database WHERE datname LIKE 'rt\\_tpl%' AND datname LIKE '%\\_' || "
      .. "left(encode(sha256(convert_to(current_database(), 'UTF8')), 'hex'), 8) || '\\_%'")
  end

  local function ledger(schema, url)
    return psql("SELECT string_agg(version || ':' || name || ':' || checksum || ':' "
      .. "|| dirty, ',' ORDER BY version) FROM " .. schema .. ".schema_migrations", url)
  end

  local function create(code, args, env)
    local cmd = { "create", code }
    for _, a in ipairs(args or {}) do
      cmd[#cmd + 1] = a
    end
    local res = ctx:tenant_cmd(cmd, env)
    assert.equal(0, res.code, mig.explain(res))
    return res
  end

  setup(function()
    ctx = mig.new("spares")
    assert(h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
      .. h.sh_quote(ctx.tenant_dir) .. "/ && mkdir -p " .. h.sh_quote(ctx.scripts)
      .. "/seeds && cp " .. h.sh_quote(h.root .. "/scripts/seeds") .. "/*.lua "
      .. h.sh_quote(ctx.scripts) .. "/seeds/"))
    assert.equal(0, ctx:migrate("").code)
  end)

  teardown(function()
    for _, db in ipairs({ "t_clone_a", "t_clone_b" }) do
      mig.drop_database(db)
    end
    ctx:destroy()
  end)

  it("keeps tenancy.spare_schemas spares and renames one into place", function()
    create("first") -- none yet: made in place, then two spares
    local before = spares()
    assert.equal(2, select(2, before:gsub("rt_spare_", "")))
    create("second")
    -- one was taken (its name is gone) and one made in its place
    local after = spares()
    assert.equal(2, select(2, after:gsub("rt_spare_", "")))
    local kept = 0
    for name in before:gmatch("[^,]+") do
      if after:find(name, 1, true) then
        kept = kept + 1
      end
    end
    assert.equal(1, kept)
    -- the spare's ledger is exactly what migrating in place records
    assert.equal(ledger("t_first"), ledger("t_second"))
    assert.equal("active|" .. mig.TENANT_HEAD .. "|true",
      psql("SELECT status || '|' || schema_version || '|' "
      .. "|| (migrated_at IS NOT NULL) FROM core.tenants WHERE code = 'second'"))
    assert.equal(psql("SELECT fingerprint FROM core.tenants WHERE code = 'first'"),
      psql("SELECT fingerprint FROM core.tenants WHERE code = 'second'"))
    -- seeded for its own id; rt_app reaches its tables
    local id = psql("SELECT id FROM core.tenants WHERE code = 'second'")
    assert.equal("40", psql("SET app.tenant_id = '" .. id .. "'; "
      .. "SELECT count(*) FROM t_second.permissions"))
    assert.equal("t", psql("SELECT has_schema_privilege('rt_app', 't_second', 'USAGE')"))
  end)

  it("makes no spares with tenancy.spare_schemas = 0", function()
    local before = spares()
    create("nospare", {}, { RUNTIME_TENANCY_SPARE_SCHEMAS = "0" })
    assert.equal(before, spares())
  end)

  it("clones database tenants from a template made from the same files", function()
    create("clone_a", { "--isolation", "database" }) -- made in place, then the template
    local tpl = templates()
    assert.matches("^rt_tpl_%x+_%x+$", tpl)
    create("clone_b", { "--isolation", "database" })
    local a = mig.db_url(h.owner_url, "t_clone_a")
    local b = mig.db_url(h.owner_url, "t_clone_b")
    assert.equal(ledger("public", a), ledger("public", b))
    assert.equal(tpl, templates())
    -- the clone gets the tenant's own database privileges, not the template's
    assert.equal("t", psql("SELECT has_database_privilege('rt_app', 't_clone_b', "
      .. "'CONNECT')"))
    assert.equal("f", psql("SELECT has_database_privilege('rt_app', '" .. tpl
      .. "', 'CONNECT')"))
  end)

  it("never takes storage made from older files, and replaces it", function()
    local old_spares, old_tpl = spares(), templates()
    ctx:write_step("tenant", NOTES_STEP, [[
return {
  up = function(m)
    m:exec("CREATE TABLE notes (id bigint PRIMARY KEY, tenant_id bigint NOT NULL)")
  end,
  down = function(m) m:exec("DROP TABLE notes") end,
}
]])
    create("newer")
    local newer = tostring(mig.TENANT_HEAD + 1)
    assert.equal(newer, psql("SELECT schema_version FROM core.tenants WHERE code = 'newer'"))
    assert.equal(newer, psql("SELECT max(version) FROM t_newer.schema_migrations"))
    -- the old spares are gone, new ones carry the new fingerprint
    local now = spares()
    for name in old_spares:gmatch("[^,]+") do
      assert.is_nil(now:find(name, 1, true))
    end
    assert.equal(2, select(2, now:gsub("rt_spare_", "")))
    ctx.databases[#ctx.databases + 1] = "t_newer_db"
    create("newer_db", { "--isolation", "database" })
    assert.equal(newer, psql("SELECT max(version) FROM public.schema_migrations",
      mig.db_url(h.owner_url, "t_newer_db")))
    assert.is_not.equal(old_tpl, templates())
    assert.equal(1, select(2, templates():gsub("rt_tpl_", "")))
    ctx:remove_step("tenant", NOTES_STEP)
  end)

  it("drops all of it with spares --drop", function()
    local res = ctx:tenant_cmd({ "spares", "--drop" })
    assert.equal(0, res.code, mig.explain(res))
    assert.equal("", spares())
    assert.equal("", templates())
    res = ctx:tenant_cmd({ "spares" })
    assert.equal(0, res.code, mig.explain(res))
    assert.equal(2, select(2, spares():gsub("rt_spare_", "")))
    assert.matches("^rt_tpl_", templates())
  end)
end)

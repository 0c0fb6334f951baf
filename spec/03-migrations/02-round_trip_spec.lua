-- up / down / up round trips: per step for a schema tenant and a database
-- tenant, and for core. Each step's effect appears with its ledger row and
-- goes with it; the directory mirrors the tenant's version.
local mig = require "helpers.migrate"

-- Step 1 also records what the `m` object said, per target.
local STEPS = {
  ["0001_items.lua"] = [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL)]]
    m:exec [[CREATE TABLE step_meta (target text, schema text, code text,
                                     isolation text, dry_run boolean)]]
    m:exec("INSERT INTO step_meta VALUES ($1, $2, $3, $4, $5)", m.target, m.schema,
      m.tenant and m.tenant.code or "", m.tenant and m.tenant.isolation or "",
      m.dry_run and true or false)
  end,
  down = function(m)
    m:exec [[DROP TABLE step_meta; DROP TABLE items]]
  end,
}
]=],
  ["0002_price.lua"] = [=[
return {
  up = function(m)
    m:exec [[ALTER TABLE items ADD COLUMN price numeric]]
  end,
  down = function(m)
    m:exec [[ALTER TABLE items DROP COLUMN price]]
  end,
}
]=],
  ["0003_title_index.lua"] = [=[
return {
  up = function(m)
    m:exec [[CREATE INDEX items_title_idx ON items (title)]]
  end,
  down = function(m)
    m:exec [[DROP INDEX items_title_idx]]
  end,
}
]=],
}

local function has_column(ctx, schema, tbl, col, url)
  return ctx:sql(string.format("SELECT count(*) FROM information_schema.columns "
    .. "WHERE table_schema = '%s' AND table_name = '%s' AND column_name = '%s'",
    schema, tbl, col), url) == "1"
end

describe("migrate round trip (schema tenant)", function()
  local ctx

  setup(function()
    ctx = mig.new("round_trip")
    ctx:tenant_steps(STEPS)
    local res = ctx:migrate("up --core")
    assert.equal(0, res.code, mig.explain(res))
    ctx:add_tenants({ "t01", "t02" })
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("brings the tenant to head: ledger, tables and directory", function()
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.is_table(res.json, mig.explain(res))
    assert.is_true(res.json.ok)
    assert.is_false(res.json.dry_run)
    local ledger = ctx:ledger("t_t01")
    assert.same({ 1, 2, 3 }, ctx:versions("t_t01"))
    assert.same({ "items", "price", "title_index" },
      { ledger[1].name, ledger[2].name, ledger[3].name })
    assert.equal(mig.sha256(ctx:step_path("tenant", "0002_price.lua")), ledger[2].checksum)
    assert.is_false(ledger[3].dirty)
    assert.is_true(ctx:exists("t_t01.items_title_idx"))
    assert.is_true(has_column(ctx, "t_t01", "items", "price"))
    local t = ctx:tenant("t01")
    assert.equal(3, t.schema_version)
    assert.equal("ok", t.migration_status)
    assert.is_string(t.fingerprint)
    assert.is_string(t.migrated_at)
    assert.is_nil(t.last_migration_error)
  end)

  it("migrates shared and every tenant, not just one", function()
    assert.same({ 1, 2, 3 }, ctx:versions("shared"))
    assert.same({ 1, 2, 3 }, ctx:versions("t_t02"))
    assert.equal(3, ctx:tenant("t02").schema_version)
  end)

  it("gives steps the m object of their target", function()
    assert.same({ { target = "tenant", schema = "t_t01", code = "t01", isolation = "schema",
      dry_run = false } }, ctx:rows("SELECT * FROM t_t01.step_meta"))
    assert.same({ { target = "shared", schema = "shared", code = "", isolation = "",
      dry_run = false } }, ctx:rows("SELECT * FROM shared.step_meta"))
  end)

  it("gives tenants with equal steps equal fingerprints", function()
    assert.equal(ctx:tenant("t01").fingerprint, ctx:tenant("t02").fingerprint)
  end)

  it("undoes one step with down --steps 1", function()
    local res = ctx:migrate("down --tenant t01 --steps 1 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2 }, ctx:versions("t_t01"))
    assert.is_false(ctx:exists("t_t01.items_title_idx"))
    assert.is_true(has_column(ctx, "t_t01", "items", "price"))
    local t = ctx:tenant("t01")
    assert.equal(2, t.schema_version)
    assert.equal("ok", t.migration_status)
    assert.are_not.equal(ctx:tenant("t02").fingerprint, t.fingerprint)
  end)

  it("leaves the other tenants alone on down --tenant", function()
    assert.same({ 1, 2, 3 }, ctx:versions("t_t02"))
    assert.is_true(ctx:exists("t_t02.items_title_idx"))
    assert.equal(3, ctx:tenant("t02").schema_version)
  end)

  it("undoes everything with down --to 0", function()
    local res = ctx:migrate("down --tenant t01 --to 0 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({}, ctx:versions("t_t01"))
    assert.is_false(ctx:exists("t_t01.items"))
    assert.is_false(ctx:exists("t_t01.step_meta"))
    assert.equal(0, ctx:tenant("t01").schema_version)
  end)

  it("stops at --to on up", function()
    local res = ctx:migrate("up --tenant t01 --to 2 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2 }, ctx:versions("t_t01"))
    assert.is_false(ctx:exists("t_t01.items_title_idx"))
    assert.equal(2, ctx:tenant("t01").schema_version)
  end)

  it("comes back to head on up", function()
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2, 3 }, ctx:versions("t_t01"))
    assert.is_true(ctx:exists("t_t01.items_title_idx"))
    local t = ctx:tenant("t01")
    assert.equal(3, t.schema_version)
    assert.equal("ok", t.migration_status)
    assert.equal(ctx:tenant("t02").fingerprint, t.fingerprint)
  end)

  it("round-trips shared with --shared", function()
    local res = ctx:migrate("down --shared --steps 2 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1 }, ctx:versions("shared"))
    assert.is_false(has_column(ctx, "shared", "items", "price"))
    res = ctx:migrate("up --shared --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2, 3 }, ctx:versions("shared"))
  end)

  it("stops down at a step that cannot be undone", function()
    ctx:write_step("tenant", "0004_forever.lua", [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE forever (id int)]]
  end,
  down = false,
}
]=])
    local res = ctx:migrate("up --tenant t01 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2, 3, 4 }, ctx:versions("t_t01"))
    res = ctx:migrate("down --tenant t01 --steps 2 --json")
    assert.equal(1, res.code, mig.explain(res))
    assert.same({ 1, 2, 3, 4 }, ctx:versions("t_t01"))
    assert.is_true(ctx:exists("t_t01.forever"))
    assert.is_true(ctx:exists("t_t01.items_title_idx"))
  end)
end)

describe("migrate round trip (database tenant)", function()
  local ctx, tenant_url

  setup(function()
    ctx = mig.new("round_trip_db")
    ctx:tenant_steps(STEPS)
    local res = ctx:migrate("up --core")
    assert.equal(0, res.code, mig.explain(res))
    tenant_url = ctx:add_database_tenant("mig_rtdb")
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("brings the tenant database to head", function()
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2, 3 }, ctx:versions("public", tenant_url))
    assert.is_true(ctx:exists("public.items_title_idx", tenant_url))
    assert.is_false(ctx:exists("public.items"))
    local t = ctx:tenant("mig_rtdb")
    assert.equal(3, t.schema_version)
    assert.equal("ok", t.migration_status)
  end)

  it("runs its steps in schema public with isolation database", function()
    assert.same({ { target = "tenant", schema = "public", code = "mig_rtdb",
      isolation = "database", dry_run = false } },
      ctx:rows("SELECT * FROM public.step_meta", tenant_url))
  end)

  it("undoes one step with down --steps 1", function()
    local res = ctx:migrate("down --tenant mig_rtdb --steps 1 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2 }, ctx:versions("public", tenant_url))
    assert.is_false(ctx:exists("public.items_title_idx", tenant_url))
    assert.equal(2, ctx:tenant("mig_rtdb").schema_version)
  end)

  it("undoes everything with down --to 0 and comes back", function()
    local res = ctx:migrate("down --tenant mig_rtdb --to 0 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({}, ctx:versions("public", tenant_url))
    assert.is_false(ctx:exists("public.items", tenant_url))
    assert.equal(0, ctx:tenant("mig_rtdb").schema_version)
    res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2, 3 }, ctx:versions("public", tenant_url))
    assert.equal(3, ctx:tenant("mig_rtdb").schema_version)
  end)
end)

describe("migrate round trip (core)", function()
  local ctx

  setup(function()
    ctx = mig.new("round_trip_core")
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("applies the core steps with up --core", function()
    local res = ctx:migrate("up --core --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same(mig.core_versions(), ctx:versions("core"))
    assert.is_true(ctx:exists("core.tenants"))
    local core = mig.find(res.json.targets, "target", "core")
    assert.is_table(core, mig.explain(res))
    assert.equal(0, core.from)
    assert.equal(mig.CORE_HEAD, core.to)
    assert.same(mig.core_versions(), mig.versions_of(core.applied))
  end)

  it("leaves the tenant targets alone with up --core", function()
    assert.is_false(ctx:exists("shared.schema_migrations"))
  end)

  it("lets rt_app read the directory", function()
    assert.equal("0", ctx:sql("SELECT count(*) FROM core.tenants", ctx.app_url))
  end)

  it("undoes core with down --core --to 0", function()
    local res = ctx:migrate("down --core --to 0 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({}, ctx:versions("core"))
    assert.is_false(ctx:exists("core.tenants"))
  end)

  it("re-applies core with up --core", function()
    local res = ctx:migrate("up --core --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same(mig.core_versions(), ctx:versions("core"))
    assert.is_true(ctx:exists("core.tenants"))
  end)
end)

-- A failing tenant does not stop the fleet: it is recorded in the directory
-- with its error, the others reach head, the command exits 1 and lists the
-- failure; a rerun touches only what is still pending.
local mig = require "helpers.migrate"

-- Step 2 fails for t07 while the marker table public.fail_t07 exists, so the
-- failure can be lifted without editing an applied file.
local STEPS = {
  ["0001_items.lua"] = [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL)]]
  end,
  down = function(m)
    m:exec [[DROP TABLE items]]
  end,
}
]=],
  ["0002_price.lua"] = [=[
return {
  up = function(m)
    m:exec [[ALTER TABLE items ADD COLUMN price numeric]]
    if m.tenant and m.tenant.code == "t07" then
      local r = m:query("SELECT to_regclass('public.fail_t07') IS NOT NULL AS f")
      if r[1].f then
        error("boom for t07")
      end
    end
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

describe("migrate fleet", function()
  local ctx
  local codes = mig.codes("t", 20)
  local first, applied_before

  setup(function()
    ctx = mig.new("fleet")
    ctx:tenant_steps(STEPS)
    local res = ctx:migrate("up --core")
    assert.equal(0, res.code, mig.explain(res))
    ctx:add_tenants(codes)
    ctx:sql("CREATE TABLE public.fail_t07 ()")
    first = ctx:migrate("--json")
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("exits 1 when one tenant fails", function()
    assert.equal(1, first.code, mig.explain(first))
    assert.is_table(first.json, mig.explain(first))
    assert.is_false(first.json.ok)
  end)

  it("lists the failing tenant with its version and error", function()
    assert.equal(1, #first.json.failures, mig.explain(first))
    local f = first.json.failures[1]
    assert.equal("tenant:t07", f.target)
    assert.equal(2, f.version)
    assert.matches("boom for t07", f.error)
  end)

  it("counts the fleet", function()
    local fleet = first.json.fleet
    assert.is_table(fleet, mig.explain(first))
    assert.equal(20, fleet.total)
    assert.equal(19, fleet.migrated)
    assert.equal(1, fleet.failed)
    assert.equal(0, fleet.up_to_date)
  end)

  it("records the failure in the directory", function()
    local t = ctx:tenant("t07")
    assert.equal(1, t.schema_version)
    assert.equal("failed", t.migration_status)
    assert.matches("boom", t.last_migration_error)
    assert.is_string(t.last_migration_at)
  end)

  it("leaves the failing tenant at its previous version", function()
    assert.same({ 1 }, ctx:versions("t_t07"))
    assert.is_false(ctx:exists("t_t07.items_title_idx"))
    -- the failed step's ALTER was rolled back with it
    assert.equal("0", ctx:sql("SELECT count(*) FROM information_schema.columns "
      .. "WHERE table_schema = 't_t07' AND table_name = 'items' AND column_name = 'price'"))
  end)

  it("brings the other 19 tenants and shared to head", function()
    local rows = ctx:rows("SELECT code, schema_version, migration_status FROM core.tenants "
      .. "WHERE code <> 't07' ORDER BY code")
    assert.equal(19, #rows)
    for _, r in ipairs(rows) do
      assert.same({ code = r.code, schema_version = 3, migration_status = "ok" }, r)
      assert.same({ 1, 2, 3 }, ctx:versions("t_" .. r.code), r.code)
    end
    assert.same({ 1, 2, 3 }, ctx:versions("shared"))
  end)

  it("reports the failure in status", function()
    local res = ctx:migrate("status --json")
    assert.is_table(res.json, mig.explain(res))
    assert.equal(1, res.json.fleet.failed)
    assert.equal(20, res.json.fleet.total)
    assert.equal(19, res.json.fleet.by_version["3"])
    assert.equal(1, res.json.fleet.by_version["1"])
  end)

  it("reruns only the failed tenant once the cause is gone", function()
    applied_before = ctx:rows("SELECT version, applied_at FROM t_t01.schema_migrations "
      .. "ORDER BY version")
    ctx:sql("DROP TABLE public.fail_t07")
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.is_true(res.json.ok)
    assert.equal(1, res.json.fleet.migrated, mig.explain(res))
    assert.equal(0, res.json.fleet.failed)
    assert.same({}, res.json.failures or {})
    local t = ctx:tenant("t07")
    assert.equal(3, t.schema_version)
    assert.equal("ok", t.migration_status)
    assert.is_nil(t.last_migration_error)
    assert.same({ 1, 2, 3 }, ctx:versions("t_t07"))
    assert.equal(ctx:tenant("t01").fingerprint, t.fingerprint)
  end)

  it("does not touch the tenants that were at head", function()
    assert.same(applied_before, ctx:rows("SELECT version, applied_at FROM t_t01.schema_migrations "
      .. "ORDER BY version"))
  end)

  it("answers at once with nothing pending", function()
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.equal(0, res.json.fleet.migrated)
    assert.equal(0, res.json.fleet.failed)
  end)

  it("leaves suspended tenants in and failed or deleted tenants out", function()
    ctx:add_tenants({ "s01" }, "suspended")
    ctx:add_tenants({ "s02" }, "provisioning")
    ctx:add_tenants({ "x01" }, "deleted")
    ctx:add_tenants({ "x02" }, "failed")
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.equal(2, res.json.fleet.migrated, mig.explain(res))
    assert.same({ 1, 2, 3 }, ctx:versions("t_s01"))
    assert.same({ 1, 2, 3 }, ctx:versions("t_s02"))
    assert.is_false(ctx:schema_exists("t_x01"))
    assert.is_false(ctx:schema_exists("t_x02"))
  end)
end)

describe("migrate fleet with a failing shared target", function()
  local ctx, res

  setup(function()
    ctx = mig.new("fleet_shared")
    ctx:tenant_steps({
      ["0001_items.lua"] = [=[
return {
  up = function(m)
    if m.target == "shared" then
      error("boom for shared")
    end
    m:exec [[CREATE TABLE items (id bigint PRIMARY KEY)]]
  end,
  down = false,
}
]=],
    })
    local r = ctx:migrate("up --core")
    assert.equal(0, r.code, mig.explain(r))
    ctx:add_tenants({ "t01", "t02" })
    res = ctx:migrate("--json")
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("exits 1 and lists shared among the failures", function()
    assert.equal(1, res.code, mig.explain(res))
    local f = mig.find(res.json.failures, "target", "shared")
    assert.is_table(f, mig.explain(res))
    assert.matches("boom for shared", f.error)
    assert.same({}, ctx:versions("shared"))
  end)

  it("still migrates the tenants", function()
    assert.equal(2, res.json.fleet.total, mig.explain(res))
    assert.equal(2, res.json.fleet.migrated, mig.explain(res))
    assert.same({ 1 }, ctx:versions("t_t01"))
    assert.same({ 1 }, ctx:versions("t_t02"))
    assert.equal(1, ctx:tenant("t01").schema_version)
  end)
end)

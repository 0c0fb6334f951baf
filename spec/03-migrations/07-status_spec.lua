-- `status` answers the fleet summary from the directory: tenants per
-- version, pending, failed and dirty counts against head, without touching
-- any tenant's ledger.
local mig = require "helpers.migrate"

local function step(n)
  return string.format([=[
return {
  up = function(m)
    m:exec [[CREATE TABLE step_%d (id int)]]
  end,
  down = function(m)
    m:exec [[DROP TABLE step_%d]]
  end,
}
]=], n, n)
end

describe("migrate status", function()
  local ctx
  local codes = mig.codes("s", 30)

  setup(function()
    ctx = mig.new("status", { jobs = 8 })
    ctx:tenant_steps({
      ["0001_one.lua"] = step(1),
      ["0002_two.lua"] = step(2),
      ["0003_three.lua"] = step(3),
    })
    local res = ctx:migrate("up --core")
    assert.equal(0, res.code, mig.explain(res))
    ctx:add_tenants(codes)
    res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("summarises a fleet at head", function()
    local res = ctx:migrate("status --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.is_table(res.json, mig.explain(res))
    local fleet = res.json.fleet
    assert.equal(30, fleet.total)
    assert.same({ ["3"] = 30 }, fleet.by_version)
    assert.equal(0, fleet.pending)
    assert.equal(0, fleet.failed)
    assert.equal(0, fleet.dirty)
    assert.equal(3, fleet.head)
  end)

  it("reports core and shared with their versions", function()
    local res = ctx:migrate("status --json")
    assert.equal(mig.CORE_HEAD, res.json.core.version)
    assert.equal(mig.CORE_HEAD, res.json.core.head)
    assert.same({}, res.json.core.pending or {})
    assert.equal(3, res.json.shared.version)
    assert.equal(3, res.json.shared.head)
  end)

  it("prints a readable summary without --json", function()
    local res = ctx:migrate("status")
    assert.equal(0, res.code, mig.explain(res))
    assert.is_nil(res.json)
    assert.matches("30", res.output)
  end)

  it("lists every tenant with --all", function()
    local res = ctx:migrate("status --all --json")
    assert.is_table(res.json, mig.explain(res))
    assert.equal(30, #res.json.tenants)
    local t = mig.find(res.json.tenants, "code", "s17")
    assert.is_table(t, mig.explain(res))
    assert.equal(3, t.version)
    assert.equal("ok", t.status)
  end)

  it("reads the directory, not the ledgers", function()
    ctx:sql("UPDATE core.tenants SET schema_version = 2 WHERE code = 's05'")
    local res = ctx:migrate("status --json")
    ctx:sql("UPDATE core.tenants SET schema_version = 3 WHERE code = 's05'")
    assert.is_table(res.json, mig.explain(res))
    assert.same({ ["2"] = 1, ["3"] = 29 }, res.json.fleet.by_version)
    assert.equal(1, res.json.fleet.pending)
  end)

  it("reports a tenant's ledger with --tenant", function()
    local res = ctx:migrate("status --tenant s05 --json")
    assert.equal(0, res.code, mig.explain(res))
    local t = mig.find(res.json.tenants, "code", "s05")
    assert.is_table(t, mig.explain(res))
    assert.equal(3, t.version)
    assert.same({}, t.pending or {})
    assert.same({}, t.drift or {})
  end)

  describe("after a new step file", function()
    local ledger_before

    setup(function()
      ledger_before = ctx:ledger("t_s01")
      ctx:write_step("tenant", "0004_four.lua", step(4))
    end)

    it("reports every tenant pending", function()
      local res = ctx:migrate("status --json")
      assert.is_table(res.json, mig.explain(res))
      local fleet = res.json.fleet
      assert.equal(30, fleet.total)
      assert.equal(30, fleet.pending)
      assert.equal(4, fleet.head)
      assert.same({ ["3"] = 30 }, fleet.by_version)
      assert.same({ 4 }, mig.versions_of(res.json.shared.pending))
    end)

    it("lists the pending version with --tenant", function()
      local res = ctx:migrate("status --tenant s01 --json")
      local t = mig.find(res.json.tenants, "code", "s01")
      assert.is_table(t, mig.explain(res))
      assert.same({ 4 }, mig.versions_of(t.pending))
    end)

    it("migrates nothing", function()
      assert.same(ledger_before, ctx:ledger("t_s01"))
      assert.is_false(ctx:exists("t_s01.step_4"))
      assert.is_false(ctx:exists("shared.step_4"))
      assert.equal("0", ctx:sql("SELECT count(*) FROM core.tenants WHERE schema_version <> 3"))
    end)
  end)
end)

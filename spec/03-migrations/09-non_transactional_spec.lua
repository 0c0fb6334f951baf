-- A failing `transaction = false` step leaves its target dirty: `up` refuses
-- it until `runtime migrate resolve` says whether the step's effects are in
-- place (--applied) or not (--rolled-back).
local mig = require "helpers.migrate"

describe("migrate non-transactional steps", function()
  local ctx

  local function index_valid(schema)
    return ctx:sql("SELECT coalesce(bool_and(indisvalid), false) FROM pg_index "
      .. "WHERE indexrelid = to_regclass('" .. schema .. ".widgets_idx')") == "t"
  end

  setup(function()
    ctx = mig.new("non_tx")
    ctx:tenant_steps({
      ["0001_items.lua"] = [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE items (id bigint PRIMARY KEY)]]
  end,
  down = function(m)
    m:exec [[DROP TABLE items]]
  end,
}
]=],
      -- Fails until the test creates the table widgets in the tenant schema.
      ["0002_widgets_index.lua"] = [=[
return {
  transaction = false,
  up = function(m)
    m:exec [[CREATE INDEX CONCURRENTLY widgets_idx ON widgets (id)]]
  end,
  down = function(m)
    m:exec [[DROP INDEX CONCURRENTLY widgets_idx]]
  end,
}
]=],
    })
    local res = ctx:migrate("up --core")
    assert.equal(0, res.code, mig.explain(res))
    ctx:add_tenants({ "d01", "d02" })
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("marks the target dirty when the step fails", function()
    local res = ctx:migrate("up --tenant d01 --json")
    assert.equal(1, res.code, mig.explain(res))
    assert.is_table(res.json, mig.explain(res))
    local f = mig.find(res.json.failures, "target", "tenant:d01")
    assert.is_table(f, mig.explain(res))
    assert.equal(2, f.version)
    assert.matches("widgets", f.error)
    local ledger = ctx:ledger("t_d01")
    assert.same({ 1, 2 }, ctx:versions("t_d01"))
    assert.is_false(ledger[1].dirty)
    assert.is_true(ledger[2].dirty)
    local t = ctx:tenant("d01")
    assert.equal("dirty", t.migration_status)
    assert.matches("widgets", t.last_migration_error)
  end)

  it("refuses a dirty target on the next up, even if the step would succeed", function()
    ctx:sql("CREATE TABLE t_d01.widgets (id int)")
    local res = ctx:migrate("up --tenant d01 --json")
    assert.equal(1, res.code, mig.explain(res))
    assert.is_table(mig.find(res.json.failures, "target", "tenant:d01"), mig.explain(res))
    assert.is_false(ctx:exists("t_d01.widgets_idx"))
    assert.is_true(ctx:ledger("t_d01")[2].dirty)
    assert.equal("dirty", ctx:tenant("d01").migration_status)
  end)

  it("counts the dirty tenant in status", function()
    local res = ctx:migrate("status --json")
    assert.is_table(res.json, mig.explain(res))
    assert.equal(1, res.json.fleet.dirty)
  end)

  it("resolve --rolled-back deletes the ledger row", function()
    local res = ctx:migrate("resolve --tenant d01 --version 2 --rolled-back")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1 }, ctx:versions("t_d01"))
  end)

  it("then applies the step on up", function()
    local res = ctx:migrate("up --tenant d01 --json")
    assert.equal(0, res.code, mig.explain(res))
    local ledger = ctx:ledger("t_d01")
    assert.same({ 1, 2 }, ctx:versions("t_d01"))
    assert.is_false(ledger[2].dirty)
    assert.is_true(index_valid("t_d01"))
    local t = ctx:tenant("d01")
    assert.equal("ok", t.migration_status)
    assert.equal(2, t.schema_version)
    assert.is_nil(t.last_migration_error)
  end)

  it("undoes a non-transactional step outside a transaction", function()
    local res = ctx:migrate("down --tenant d01 --steps 1 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1 }, ctx:versions("t_d01"))
    assert.is_false(ctx:exists("t_d01.widgets_idx"))
    assert.equal(1, ctx:tenant("d01").schema_version)
    res = ctx:migrate("up --tenant d01 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2 }, ctx:versions("t_d01"))
    assert.is_true(index_valid("t_d01"))
  end)

  it("resolve --applied keeps the row and clears dirty", function()
    local res = ctx:migrate("up --tenant d02 --json")
    assert.equal(1, res.code, mig.explain(res))
    assert.equal("dirty", ctx:tenant("d02").migration_status)
    -- the operator completes the step by hand
    ctx:sql("CREATE TABLE t_d02.widgets (id int)")
    ctx:sql("CREATE INDEX widgets_idx ON t_d02.widgets (id)")
    res = ctx:migrate("resolve --tenant d02 --version 2 --applied")
    assert.equal(0, res.code, mig.explain(res))
    local ledger = ctx:ledger("t_d02")
    assert.same({ 1, 2 }, ctx:versions("t_d02"))
    assert.is_false(ledger[2].dirty)
  end)

  it("lets up pass a target resolved as applied", function()
    local res = ctx:migrate("up --tenant d02 --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2 }, ctx:versions("t_d02"))
    local t = ctx:tenant("d02")
    assert.equal("ok", t.migration_status)
    assert.equal(2, t.schema_version)
  end)

  it("refuses resolve on a target that is not dirty", function()
    local res = ctx:migrate("resolve --tenant d02 --version 2 --rolled-back")
    assert.are_not.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2 }, ctx:versions("t_d02"))
  end)
end)

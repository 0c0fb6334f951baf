-- Drift: an applied file whose checksum changed is reported and blocks `up`
-- for the targets that applied it, unless --accept-drift records the new
-- checksum. A file removed after it was applied is an error for the target.
local h = require "helpers"
local mig = require "helpers.migrate"

local STEP2 = [=[
-- adds a price
return {
  up = function(m)
    m:exec [[ALTER TABLE items ADD COLUMN price numeric]]
  end,
  down = function(m)
    m:exec [[ALTER TABLE items DROP COLUMN price]]
  end,
}
]=]

describe("migrate drift", function()
  local ctx, old_sum, new_sum

  setup(function()
    ctx = mig.new("drift")
    ctx:tenant_steps({
      ["0001_items.lua"] = [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE items (id bigint PRIMARY KEY, title text)]]
  end,
  down = function(m)
    m:exec [[DROP TABLE items]]
  end,
}
]=],
      ["0002_price.lua"] = STEP2,
    })
    local res = ctx:migrate("up --core")
    assert.equal(0, res.code, mig.explain(res))
    ctx:add_tenants({ "t01", "t02" })
    res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    old_sum = mig.sha256(ctx:step_path("tenant", "0002_price.lua"))
    -- only a comment changes, but the checksum is over the file
    ctx:write_step("tenant", "0002_price.lua", STEP2:gsub("adds a price", "adds the price"))
    new_sum = mig.sha256(ctx:step_path("tenant", "0002_price.lua"))
    ctx:write_step("tenant", "0003_title_index.lua", [=[
return {
  up = function(m)
    m:exec [[CREATE INDEX items_title_idx ON items (title)]]
  end,
  down = function(m)
    m:exec [[DROP INDEX items_title_idx]]
  end,
}
]=])
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("records the file's SHA-256 in the ledger", function()
    assert.equal(old_sum, ctx:ledger("t_t01")[2].checksum)
    assert.equal(old_sum, ctx:ledger("shared")[2].checksum)
  end)

  it("reports drift for shared in status", function()
    local res = ctx:migrate("status --json")
    assert.is_table(res.json, mig.explain(res))
    assert.same({ 2 }, mig.versions_of(res.json.shared.drift))
    assert.same({ 3 }, mig.versions_of(res.json.shared.pending))
  end)

  it("reports drift for a tenant in status --tenant", function()
    local res = ctx:migrate("status --tenant t01 --json")
    assert.is_table(res.json, mig.explain(res))
    local t = mig.find(res.json.tenants, "code", "t01")
    assert.is_table(t, mig.explain(res))
    assert.same({ 2 }, mig.versions_of(t.drift))
    assert.same({ 3 }, mig.versions_of(t.pending))
  end)

  it("blocks up --tenant for a drifted tenant", function()
    local res = ctx:migrate("up --tenant t01 --json")
    assert.equal(1, res.code, mig.explain(res))
    local f = mig.find(res.json.failures, "target", "tenant:t01")
    assert.is_table(f, mig.explain(res))
    assert.matches("drift", f.error)
    assert.same({ 1, 2 }, ctx:versions("t_t01"))
    assert.is_false(ctx:exists("t_t01.items_title_idx"))
    assert.equal(old_sum, ctx:ledger("t_t01")[2].checksum)
  end)

  it("exits 1 on up and applies nothing to drifted targets", function()
    local res = ctx:migrate("--json")
    assert.equal(1, res.code, mig.explain(res))
    assert.is_table(res.json, mig.explain(res))
    assert.is_false(res.json.ok)
    assert.is_table(mig.find(res.json.failures, "target", "tenant:t01"), mig.explain(res))
    assert.is_table(mig.find(res.json.failures, "target", "shared"), mig.explain(res))
    for _, schema in ipairs({ "shared", "t_t01", "t_t02" }) do
      assert.same({ 1, 2 }, ctx:versions(schema), schema)
      assert.is_false(ctx:exists(schema .. ".items_title_idx"), schema)
      assert.equal(old_sum, ctx:ledger(schema)[2].checksum, schema)
    end
  end)

  it("marks drifted tenants in the directory", function()
    local t = ctx:tenant("t01")
    assert.equal("drift", t.migration_status)
    assert.equal(2, t.schema_version)
    assert.is_string(t.last_migration_error)
  end)

  it("lists drifted tenants in status --all", function()
    local res = ctx:migrate("status --all --json")
    assert.is_table(res.json, mig.explain(res))
    local t = mig.find(res.json.tenants, "code", "t02")
    assert.is_table(t, mig.explain(res))
    assert.equal("drift", t.status)
    assert.equal(2, t.version)
  end)

  it("applies with --accept-drift and records the new checksum", function()
    local res = ctx:migrate("up --accept-drift --json")
    assert.equal(0, res.code, mig.explain(res))
    for _, schema in ipairs({ "shared", "t_t01", "t_t02" }) do
      local ledger = ctx:ledger(schema)
      assert.same({ 1, 2, 3 }, ctx:versions(schema), schema)
      assert.equal(new_sum, ledger[2].checksum, schema)
      assert.is_true(ctx:exists(schema .. ".items_title_idx"), schema)
    end
    local t = ctx:tenant("t01")
    assert.equal("ok", t.migration_status)
    assert.equal(3, t.schema_version)
    assert.is_nil(t.last_migration_error)
  end)

  it("has no drift left after accepting it", function()
    local res = ctx:migrate("status --tenant t01 --json")
    local t = mig.find(res.json.tenants, "code", "t01")
    assert.same({}, t.drift or {})
    res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
  end)

  it("reports a removed applied file as an error for the target", function()
    local path = ctx:step_path("tenant", "0003_title_index.lua")
    local src = h.read_all(path)
    os.remove(path)
    local res = ctx:migrate("--json")
    h.write_all(path, src)
    assert.equal(1, res.code, mig.explain(res))
    assert.is_table(mig.find(res.json.failures, "target", "tenant:t01"), mig.explain(res))
    assert.same({ 1, 2, 3 }, ctx:versions("t_t01"))
    assert.is_true(ctx:exists("t_t01.items_title_idx"))
  end)
end)

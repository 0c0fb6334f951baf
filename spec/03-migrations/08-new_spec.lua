-- `runtime migrate new NAME [--core]` writes the next numbered step from a
-- template and prints its path; the file validates and applies as is.
local h = require "helpers"
local mig = require "helpers.migrate"

describe("migrate new", function()
  local ctx

  setup(function()
    ctx = mig.new("new")
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
    })
    local res = ctx:migrate("up --core")
    assert.equal(0, res.code, mig.explain(res))
    ctx:add_tenants({ "n01" })
    res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("writes the next tenant step and prints its path", function()
    local res = ctx:migrate("new add_phone")
    assert.equal(0, res.code, mig.explain(res))
    local path = ctx:step_path("tenant", "0002_add_phone.lua")
    assert.is_string(h.read_all(path), "no file at " .. path .. "\n" .. mig.explain(res))
    assert.matches("0002_add_phone%.lua", res.out)
  end)

  it("writes a step that validates and applies", function()
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    local ledger = ctx:ledger("t_n01")
    assert.same({ 1, 2 }, ctx:versions("t_n01"))
    assert.equal("add_phone", ledger[2].name)
    assert.equal(2, ctx:tenant("n01").schema_version)
  end)

  it("numbers on from the highest version", function()
    local res = ctx:migrate("new add_email")
    assert.equal(0, res.code, mig.explain(res))
    assert.is_string(h.read_all(ctx:step_path("tenant", "0003_add_email.lua")))
  end)

  it("writes a core step with --core", function()
    local res = ctx:migrate("new add_audit --core")
    assert.equal(0, res.code, mig.explain(res))
    local file = ("%04d_add_audit.lua"):format(mig.CORE_HEAD + 1)
    local path = ctx:step_path("core", file)
    assert.is_string(h.read_all(path), "no file at " .. path .. "\n" .. mig.explain(res))
    assert.matches((file:gsub("%.", "%%.")), res.out)
    assert.is_nil(h.read_all(ctx:step_path("tenant", "0004_add_audit.lua")))
  end)

  it("writes a core step that applies with up --core", function()
    local res = ctx:migrate("up --core --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same(mig.core_versions(1), ctx:versions("core"))
    assert.equal("add_audit", ctx:ledger("core")[mig.CORE_HEAD + 1].name)
  end)

  it("refuses a name that is not [a-z0-9_]+", function()
    local res = ctx:migrate("new Add-Phone")
    assert.are_not.equal(0, res.code, mig.explain(res))
    local listing = h.run("ls " .. h.sh_quote(ctx.tenant_dir))
    assert.not_matches("Add", listing)
    assert.not_matches("0004", listing)
  end)
end)

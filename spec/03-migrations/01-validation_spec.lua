-- `runtime migrate` validates every step file before anything runs: a bad
-- file is reported with its name (and line for syntax errors), the command
-- exits 1 and nothing is applied, not even the valid core steps.
local mig = require "helpers.migrate"

local GOOD = [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE items (id bigint PRIMARY KEY)]]
  end,
  down = function(m)
    m:exec [[DROP TABLE items]]
  end,
}
]=]

describe("migrate validation", function()
  local ctx

  setup(function()
    ctx = mig.new("validation")
  end)

  teardown(function()
    ctx:destroy()
  end)

  local function nothing_applied()
    assert.is_false(ctx:exists("core.schema_migrations"))
    assert.is_false(ctx:exists("core.tenants"))
    assert.is_false(ctx:exists("shared.schema_migrations"))
    assert.is_false(ctx:exists("shared.items"))
  end

  -- Writes the tenant steps, runs `runtime migrate`, checks exit 1 and that
  -- nothing was applied; returns the result.
  local function refused(files)
    ctx:tenant_steps(files)
    local res = ctx:migrate("")
    assert.equal(1, res.code, mig.explain(res))
    nothing_applied()
    return res
  end

  it("applies nothing when a version is missing", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0003_third.lua"] = GOOD,
    })
    assert.matches("0003_third%.lua", res.output)
  end)

  it("applies nothing when a version is used twice", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0001_again.lua"] = GOOD,
    })
    assert.matches("0001_again%.lua", res.output)
    assert.matches("0001_first%.lua", res.output)
  end)

  it("applies nothing when a version does not start at 1", function()
    local res = refused({
      ["0002_second.lua"] = GOOD,
    })
    assert.matches("0002_second%.lua", res.output)
  end)

  it("refuses a file name that is not NNNN_name.lua", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0002_Add-Phone.lua"] = GOOD,
    })
    assert.matches("0002_Add%-Phone%.lua", res.output)
  end)

  it("refuses a file name without a zero-padded version", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["2_second.lua"] = GOOD,
    })
    assert.matches("2_second%.lua", res.output)
  end)

  it("reports a syntax error with file and line", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0002_broken.lua"] = "return {\n  up = function(m)\n    m:exec(\n  end,\n}\n",
    })
    assert.matches("0002_broken%.lua:%d+:", res.output)
  end)

  it("reports an error raised while the file runs", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0002_raises.lua"] = "error(\"cannot load me\")\nreturn {}\n",
    })
    assert.matches("0002_raises%.lua", res.output)
    assert.matches("cannot load me", res.output)
  end)

  it("refuses a file that does not return a table", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0002_number.lua"] = "return 42\n",
    })
    assert.matches("0002_number%.lua", res.output)
  end)

  it("refuses a step without up", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0002_noup.lua"] = "return { down = false }\n",
    })
    assert.matches("0002_noup%.lua", res.output)
    assert.matches("up", res.output)
  end)

  it("refuses a down that is neither a function nor false", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0002_baddown.lua"] = "return { up = function(m) end, down = true }\n",
    })
    assert.matches("0002_baddown%.lua", res.output)
    assert.matches("down", res.output)
  end)

  it("refuses a transaction flag that is not a boolean", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0002_badtx.lua"] = "return { up = function(m) end, transaction = \"no\" }\n",
    })
    assert.matches("0002_badtx%.lua", res.output)
    assert.matches("transaction", res.output)
  end)

  it("refuses an unknown field, naming it", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0002_typo.lua"] = "return { up = function(m) end, donw = function(m) end }\n",
    })
    assert.matches("0002_typo%.lua", res.output)
    assert.matches("donw", res.output)
  end)

  it("reports every bad file, not just the first", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0002_typo.lua"] = "return { up = function(m) end, donw = function(m) end }\n",
      ["0003_noup.lua"] = "return { down = false }\n",
    })
    assert.matches("0002_typo%.lua", res.output)
    assert.matches("0003_noup%.lua", res.output)
  end)

  it("refuses a bad core step the same way", function()
    ctx:tenant_steps({ ["0001_first.lua"] = GOOD })
    local path = ctx:write_step("core", "0002_broken.lua", "return { up = 1 }\n")
    local res = ctx:migrate("")
    os.remove(path)
    assert.equal(1, res.code, mig.explain(res))
    assert.matches("0002_broken%.lua", res.output)
    nothing_applied()
  end)

  it("validates before `up --core` too", function()
    local res = refused({
      ["0001_first.lua"] = GOOD,
      ["0003_third.lua"] = GOOD,
    })
    assert.matches("0003_third%.lua", res.output)
    res = ctx:migrate("up --core")
    assert.equal(1, res.code, mig.explain(res))
    nothing_applied()
  end)

  it("applies valid files once the problem is fixed", function()
    ctx:tenant_steps({ ["0001_first.lua"] = GOOD })
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same(mig.core_versions(), ctx:versions("core"))
    assert.same({ 1 }, ctx:versions("shared"))
  end)
end)

describe("migrate usage", function()
  local ctx

  setup(function()
    ctx = mig.new("usage")
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("documents every subcommand in --help", function()
    local res = ctx:migrate("--help")
    assert.equal(0, res.code, mig.explain(res))
    for _, word in ipairs({ "up", "down", "status", "new", "resolve", "--dry%-run", "--jobs",
      "--json", "--accept%-drift", "--steps", "--to", "--rolled%-back", "--applied" }) do
      assert.matches(word, res.output)
    end
  end)

  it("exits 2 on an unknown option", function()
    local res = ctx:migrate("up --frobnicate")
    assert.equal(2, res.code, mig.explain(res))
  end)

  it("exits 2 on an unknown subcommand", function()
    local res = ctx:migrate("sideways")
    assert.equal(2, res.code, mig.explain(res))
  end)

  it("exits 2 when down has no target or no amount", function()
    assert.equal(2, ctx:migrate("down --steps 1").code)
    assert.equal(2, ctx:migrate("down --core").code)
  end)

  it("exits 2 when resolve lacks --applied or --rolled-back", function()
    assert.equal(2, ctx:migrate("resolve --core --version 1").code)
  end)

  it("exits 2 when new has no name", function()
    assert.equal(2, ctx:migrate("new").code)
  end)
end)

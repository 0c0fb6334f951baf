-- The script sandbox (docs/SCRIPTS.md): every way out is refused with a clear
-- error, and nothing one request tries changes what the next one sees.
local h = require "helpers"

describe("script sandbox", function()
  local srv

  setup(function()
    srv = h.start({ scripts = h.root .. "/spec/fixtures/sandbox" })
  end)

  teardown(function()
    srv:stop()
  end)

  local function escape(case)
    local r = srv:request({ path = "/escape/" .. case })
    assert.equal(200, r.status, r.body)
    return r.json
  end

  local refusals = {
    io = "undefined global 'io'",
    os_execute = "field 'execute'",
    os_getenv = "field 'getenv'",
    debug = "undefined global 'debug'",
    package = "undefined global 'package'",
    dofile = "undefined global 'dofile'",
    loadfile = "undefined global 'loadfile'",
    collectgarbage = "undefined global 'collectgarbage'",
    load_bytecode = "binary chunk",
    load_bytecode_mode = "binary chunk",
    string_dump = "field 'dump'",
    replace_format = "cannot modify 'string'",
    rawset_format = "cannot modify 'string'",
    string_metatable = "index a boolean value",
    setmetatable_string = "protected metatable",
    replace_global = "cannot assign to built-in global 'pairs'",
    rawset_global = "cannot assign to built-in global 'tostring'",
    rt_module = "cannot modify 'rt.db'",
    undefined_global = "undefined global 'undefined_thing'",
    require_traversal = "bad module name '../../etc/passwd'",
    require_absolute = "bad module name '/etc/passwd'",
    require_missing = "module 'lib.nope' not found",
    require_io = "module 'io' not found",
    require_cycle = "requires itself",
    gc_metamethod = "__gc metamethods are not allowed",
    array_metatable = "index a boolean value",
    rows_metatable = "protected metatable",
  }

  for case, message in pairs(refusals) do
    it("refuses " .. case:gsub("_", " "), function()
      local res = escape(case)
      assert.is_true(res.refused)
      assert.matches(message, res.message, 1, true)
    end)
  end

  it("names the script file and line in the error", function()
    local res = escape("undefined_global")
    assert.matches("api/escapes.lua:%d+: undefined global", res.message)
  end)

  it("keeps the shared libraries intact for the next request", function()
    for _, case in ipairs({ "replace_format", "rawset_format", "string_metatable",
      "replace_global", "rawset_global", "setmetatable_string" }) do
      escape(case)
    end
    local r = srv:request({ path = "/format" })
    assert.equal(200, r.status)
    assert.same({ formatted = "7-x", method = "ABC", pairs = "function", tostring = "12" },
      { formatted = r.json.formatted, method = r.json.method, pairs = r.json.pairs,
        tostring = r.json.tostring })
    -- pairs() over a read-only library still lists it.
    assert.is_true(r.json.library_keys > 10)
  end)

  it("requires script modules from the scripts directory, once per state", function()
    local r = srv:request({ path = "/modules" })
    assert.equal(200, r.status, r.body)
    assert.equal(42, r.json.twice)
    assert.is_true(r.json.cached)
    assert.equal(1, r.json.loads)
    assert.equal("module", r.json.loaded_at)
    assert.is_true(r.json.handled >= 1)
  end)
end)

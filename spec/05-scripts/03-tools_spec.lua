-- `runtime check` and `runtime routes`: offline, no database needed.
local h = require "helpers"
local cjson = require "cjson"

-- An empty config: defaults only, and no database URL.
local config = h.config_file("{}")
teardown(function()
  os.remove(config)
end)

local function tool(args, env)
  env = env or {}
  env.RUNTIME_CONFIG = config
  local out = h.run_bin(args, env)
  local body, code = out:match("^(.*)exit=(%d+)%s*$")
  return body, tonumber(code)
end

local good = h.root .. "/spec/fixtures/sandbox"
local broken = h.root .. "/spec/fixtures/broken_scripts"

describe("runtime check", function()
  it("passes a valid scripts directory", function()
    local out, code = tool("check --scripts " .. h.sh_quote(good))
    assert.equal(0, code, out)
    assert.matches("is valid: 5 script files, %d+ routes", out)
  end)

  it("passes the project's own scripts", function()
    local out, code = tool("check --scripts " .. h.sh_quote(h.root .. "/scripts"))
    assert.equal(0, code, out)
  end)

  it("reports every broken file with file and line, and exits 1", function()
    local out, code = tool("check --scripts " .. h.sh_quote(broken))
    assert.equal(1, code)
    assert.matches("broken_scripts/lib/bad.lua:2: ", out, 1, true)
    assert.matches("broken_scripts/migrations/tenant/0002_bad.lua: up must be a function",
      out, 1, true)
    assert.matches("broken_scripts/seeds/0001_roles.lua: unknown field 'extra'", out, 1, true)
    assert.matches("3 problems", out, 1, true)
  end)

  it("reports a broken route table", function()
    local out, code = tool("check --scripts " .. h.sh_quote(h.root .. "/spec/fixtures/badroute"))
    assert.equal(1, code)
    assert.matches("typo.lua: route GET /typo: unknown field 'permision'", out, 1, true)
  end)

  it("reports a module-level error with its line", function()
    local out, code = tool("check --scripts " .. h.sh_quote(h.root .. "/spec/fixtures/syntax"))
    assert.equal(1, code)
    assert.matches("syntax/api/broken.lua:%d+:", out)
  end)

  it("stops module-level code that never ends, naming the file", function()
    local out, code = tool("check --scripts " .. h.sh_quote(h.root .. "/spec/fixtures/loop_at_load"),
      { RUNTIME_SCRIPTS_INSTRUCTION_LIMIT = "1000000" })
    assert.equal(1, code)
    assert.matches("loop_at_load/api/spin.lua: instruction limit exceeded while loading", out,
      1, true)
  end)

  it("reports JWT key files that serve would refuse", function()
    local out, code = tool("check --scripts " .. h.sh_quote(good), {
      RUNTIME_AUTH_JWT_ALGORITHM = "RS256", RUNTIME_AUTH_JWT_KID = "a",
      RUNTIME_AUTH_JWT_PRIVATE_KEY_FILE = "/nonexistent/key.pem",
      RUNTIME_AUTH_JWT_PUBLIC_KEYS = "a=/nonexistent/key.pub" })
    assert.equal(1, code, out)
    assert.matches("auth.jwt_private_key_file: cannot read '/nonexistent/key.pem'", out, 1,
      true)
    out, code = tool("check --scripts " .. h.sh_quote(good), { RUNTIME_AUTH_JWT_ALGORITHM = "HS384" })
    assert.equal(1, code, out)
    assert.matches("auth.jwt_algorithm must be HS256, RS256 or ES256", out, 1, true)
  end)

  it("gives problems as JSON with --json", function()
    local out, code = tool("check --json --scripts " .. h.sh_quote(broken))
    assert.equal(1, code)
    local res = cjson.decode(out)
    assert.is_false(res.ok)
    assert.equal(3, #res.problems)
    local lib = res.problems[1]
    assert.matches("lib/bad.lua$", lib.file)
    assert.equal(2, lib.line)
    assert.matches("expected", lib.message)
    assert.equal(cjson.null, res.problems[2].line)
  end)

  it("has --help", function()
    local out, code = tool("check --help")
    assert.equal(0, code)
    assert.matches("usage: runtime check", out, 1, true)
  end)
end)

describe("runtime routes", function()
  it("lists method, path, scope, permission and file, sorted by path", function()
    local out, code = tool("routes --scripts " .. h.sh_quote(good))
    assert.equal(0, code, out)
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.matches("^METHOD%s+PATH%s+SCOPE%s+PERMISSION%s+FILE$", lines[1])
    assert.matches("^GET%s+/escape/:case%s+public%s+%-%s+api/escapes.lua$", lines[2])
    assert.equal(6, #lines)
  end)

  it("gives JSON with --json", function()
    local out, code = tool("routes --json --scripts "
      .. h.sh_quote(h.root .. "/spec/fixtures/scripts"))
    assert.equal(0, code, out)
    local res = cjson.decode(out)
    local private
    for _, r in ipairs(res.routes) do
      if r.path == "/private" then
        private = r
      end
    end
    assert.same({ method = "GET", path = "/private", scope = "tenant",
      permission = cjson.null, file = "api/misc.lua" }, private)
  end)

  it("fails when the scripts do not load", function()
    local out, code = tool("routes --scripts " .. h.sh_quote(h.root .. "/spec/fixtures/dup"))
    assert.equal(1, code)
    assert.matches("duplicate route", out, 1, true)
  end)
end)

-- Start-up validation and graceful shutdown of the real binary.
local h = require "helpers"

local function serve_with(scripts, extra_env)
  local cfg = h.config_file(string.format("{ scripts = { dir = %q } }", scripts))
  local env = { RUNTIME_DATABASE_URL = h.app_url }
  for k, v in pairs(extra_env or {}) do
    env[k] = v
  end
  local out = h.run_bin("serve --config " .. h.sh_quote(cfg), env)
  os.remove(cfg)
  return out
end

describe("start-up", function()
  local fixtures = h.root .. "/spec/fixtures"

  it("refuses duplicate routes and names both files", function()
    local out = serve_with(fixtures .. "/dup")
    assert.matches("exit=1", out)
    assert.matches("duplicate route GET /same/:key", out)
    assert.matches("dup/api/a%.lua", out)
    assert.matches("dup/api/b%.lua", out)
  end)

  it("refuses unknown route fields, naming file and route", function()
    local out = serve_with(fixtures .. "/badroute")
    assert.matches("exit=1", out)
    assert.matches("typo%.lua: route GET /typo: unknown field 'permision'", out)
  end)

  it("reports syntax errors with file and line", function()
    local out = serve_with(fixtures .. "/syntax")
    assert.matches("exit=1", out)
    assert.matches("broken%.lua:3:", out)
  end)

  it("refuses unknown config keys", function()
    local cfg = h.config_file("{ http = { prot = 1 } }")
    local out = h.run_bin("serve --config " .. h.sh_quote(cfg))
    os.remove(cfg)
    assert.matches("exit=1", out)
    assert.matches("unknown key 'http.prot'", out)
  end)

  it("refuses to start without a database URL", function()
    local cfg = h.config_file("{}")
    local out = h.run_bin("serve --config " .. h.sh_quote(cfg), { RUNTIME_DATABASE_URL = "" })
    os.remove(cfg)
    assert.matches("exit=1", out)
    assert.matches("database.url is not set", out)
  end)

  it("documents itself", function()
    assert.matches("usage: runtime", h.run_bin("--help"))
    assert.matches("exit=2", h.run_bin("frobnicate"))
    assert.matches("runtime %d+%.%d+", h.run_bin("version"))
  end)
end)

describe("shutdown", function()
  it("lets in-flight requests finish on SIGTERM", function()
    local srv = h.start()
    local out = os.tmpname()
    os.execute(string.format(
      "curl -s -o %s -w '%%{http_code}' http://127.0.0.1:%d/sleep/0.4 > %s.code &",
      out, srv.port, out))
    h.sleep(0.15)
    h.run("kill -TERM " .. srv.pid)
    assert.is_true(srv:wait_exit(10))
    h.sleep(0.1)
    assert.equal("200", h.read_all(out .. ".code"))
    assert.matches('"slept":0.4', h.read_all(out))
    assert.matches("SIGTERM received", srv:logs())
    os.remove(out)
    os.remove(out .. ".code")
    srv:stop()
  end)
end)

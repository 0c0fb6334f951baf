-- HOLE: UPDATE pg_settings passes the SQL guard (an UPDATE, no FuncCall), and
-- pg_settings' rule runs set_config(name, value, false): any user-settable
-- setting at session level, with the guard on. pg_settings is UPDATE-able by
-- PUBLIC. Tenant sa (1) turns its own statement_timeout off and runs past it,
-- (2) leaves default_transaction_read_only on its pooled connection so that
-- tenant sb's next write fails.
local h = require "helpers"
local mig = require "helpers.migrate"
local cjson = require "cjson"

-- Two shared-mode tenants, each with a marker row.
local function setup_tenants(name)
  local ctx = mig.new(name)
  local ids = {}
  assert(h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
    .. h.sh_quote(ctx.tenant_dir) .. "/"))
  local res = ctx:migrate("")
  assert.equal(0, res.code, mig.explain(res))
  for _, code in ipairs({ "sa", "sb" }) do
    res = ctx:tenant_cmd({ "create", code, "--isolation", "shared" })
    assert.equal(0, res.code, mig.explain(res))
    ids[code] = tonumber(h.psql("SELECT id FROM core.tenants WHERE code = '" .. code .. "'",
      ctx.owner_url))
    h.psql(("BEGIN; SELECT set_config('search_path', 'shared', true), "
      .. "set_config('app.tenant_id', '%d', true); INSERT INTO boards (code, name) "
      .. "VALUES ('marker', 'marker-%s'); COMMIT;"):format(ids[code], code), ctx.owner_url)
  end
  return ctx, ids
end

-- A hostile tenant route that runs its statements the plain way, in the
-- request's transaction (no savepoint around each, as /iso/sql has).
local RAW = [[
local db = require "rt.db"
local json = require "rt.json"
return {
  ["/raw/sql"] = { POST = { scope = "public", handler = function(req)
    local out = {}
    for i, sql in ipairs(req.json().sql) do
      local ok, rows, err = pcall(db.query, sql)
      if not ok then out[i] = { refused = tostring(rows) }
      elseif rows then out[i] = { rows = rows }
      else out[i] = { error = err } end
    end
    return { json = { results = json.array(out) } }
  end } },
}
]]

local function start(ctx, database, env)
  env = env or {}
  env.RUNTIME_TENANCY_SOURCES = "header"
  local dir = os.tmpname()
  os.remove(dir)
  assert(h.run("mkdir -p " .. h.sh_quote(dir .. "/api")))
  local f = assert(io.open(dir .. "/api/raw.lua", "w"))
  f:write(RAW)
  f:close()
  return h.start({ database_url = ctx.app_url, threads = 1, scripts = dir,
    database = database or "pool_size = 1", env = env })
end

local function attack(srv, code, statements)
  local r = srv:request({ method = "POST", path = "/raw/sql",
    headers = { ["X-Tenant-Id"] = code, ["Content-Type"] = "application/json" },
    body = cjson.encode({ sql = statements }) })
  assert.equal(200, r.status, r.body)
  return r.json.results
end

describe("guard hole: UPDATE pg_settings is set_config(..., false)", function()
  local ctx, ids, srv

  setup(function()
    ctx, ids = setup_tenants("iso_pg_settings")
    srv = start(ctx, "pool_size = 1, statement_timeout_ms = 300") -- guard on
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  it("refuses UPDATE pg_settings in a request statement", function()
    local r = attack(srv, "sa", {
      "UPDATE pg_settings SET setting = 'rt-review' WHERE name = 'application_name'",
    })[1]
    assert.is_string(r.refused, "ran: " .. cjson.encode(r))
  end)

  it("keeps a request within database.statement_timeout_ms", function()
    local r = srv:request({ method = "POST", path = "/raw/sql",
      headers = { ["X-Tenant-Id"] = "sa", ["Content-Type"] = "application/json" },
      body = cjson.encode({ sql = {
        "UPDATE pg_settings SET setting = '0' WHERE name = 'statement_timeout'",
        "SELECT pg_sleep(1) IS NULL AS slept" } }) })
    local slept = r.status == 200 and r.json.results[2].rows
    assert.is_falsy(slept, "slept 1 s past the 300 ms statement timeout: " .. r.body)
  end)

  it("leaves nothing of tenant sa's session state for tenant sb", function()
    attack(srv, "sa", {
      "UPDATE pg_settings SET setting = 'on' WHERE name = 'default_transaction_read_only'",
    })
    -- tenant sb, next on the same (only) connection
    local r = srv:request({ method = "POST", path = "/raw/sql",
      headers = { ["X-Tenant-Id"] = "sb", ["Content-Type"] = "application/json" },
      body = cjson.encode({ sql = {
        "INSERT INTO boards (code, name) VALUES ('after', 'after') RETURNING name" } }) })
    assert.equal(200, r.status, "tenant sb's write failed on sa's connection: " .. r.body)
    assert.equal("after", r.json.results[1].rows[1].name)
    assert.is_number(ids.sb)
  end)
end)

-- HOLE (the guard off: walls 2 and 3 alone): the runtime runs its scoping
-- statement, "SELECT set_config($1, $2, true), ...", as a named prepared
-- statement cached per connection (rt_<n>). A statement on that connection
-- can read the names (pg_prepared_statements), DEALLOCATE one and PREPARE its
-- own under the same name. The next transaction of another tenant, or of the
-- core, runs the trap with its signed scope as $4 and leaves that scope in a
-- session setting; the attacker's next request on the connection signs itself
-- with it. The signed tag is per connection, not per transaction, so a stolen
-- one keeps working: tenant sa reads tenant sb's rows and core.users.
local h = require "helpers"
local mig = require "helpers.migrate"
local cjson = require "cjson"

-- Two shared-mode tenants, each with a marker row; the hostile route is
-- spec/fixtures/isolation/api/iso.lua (/iso/sql runs whatever it is sent).
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

local function start(ctx, database, env)
  env = env or {}
  env.RUNTIME_TENANCY_SOURCES = "header"
  return h.start({ database_url = ctx.app_url, threads = 1,
    scripts = h.root .. "/spec/fixtures/isolation",
    database = database or "pool_size = 1", env = env })
end

local function attack(srv, code, statements)
  local r = srv:request({ method = "POST", path = "/iso/sql",
    headers = { ["X-Tenant-Id"] = code, ["Content-Type"] = "application/json" },
    body = cjson.encode({ sql = statements }) })
  assert.equal(200, r.status, r.body)
  return r.json.results
end

-- The trap: the runtime's own settings (same parameters, same effect), and a
-- copy of the signed scope ($4) in a session setting named after the scope.
local function trap(name, nparams)
  local types, calls = {}, {}
  for i = 1, nparams do
    types[i] = "text"
  end
  for i = 1, nparams, 2 do
    calls[#calls + 1] = ("set_config($%d, $%d, true)"):format(i, i + 1)
  end
  calls[#calls + 1] = "set_config('x.' || translate(split_part($4, '.', 1), ':', '_'), $4, "
    .. "false)"
  return { "DEALLOCATE " .. name,
    ("PREPARE %s (%s) AS SELECT %s"):format(name, table.concat(types, ", "),
      table.concat(calls, ", ")) }
end

describe("hole: a prepared statement on a pooled connection steals the next scope", function()
  local ctx, ids, srv

  setup(function()
    ctx, ids = setup_tenants("iso_prepared")
    h.psql("INSERT INTO core.users (email, password_hash, is_superuser) "
      .. "VALUES ('root@platform.test', 'not-a-hash', true)", ctx.owner_url)
    -- the guard off, one connection: every request below shares it
    srv = start(ctx, "pool_size = 1", { RUNTIME_TEST_SQLGUARD = "off" })
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  -- The runtime's prepared scoping statements on this connection, by text.
  local function prepared(code)
    local rows = attack(srv, code, {
      "SELECT name, statement FROM pg_prepared_statements WHERE statement LIKE "
        .. "'SELECT set_config($1, $2, true)%'",
    })[1].rows
    local out = {}
    for _, row in ipairs(rows) do
      local _, n = row.statement:gsub("set_config", "")
      out[n] = row.name
    end
    return out
  end

  it("keeps tenant sb's rows from tenant sa", function()
    -- a tenant's read-write transaction sets 4 settings (timeout, scope,
    -- search_path, app.tenant_id): that statement is prepared by now
    local names = prepared("sa")
    assert.is_string(names[4])
    local setup_trap = {}
    for _, sql in ipairs(trap(names[4], 8)) do
      setup_trap[#setup_trap + 1] = sql
    end
    attack(srv, "sa", setup_trap)
    attack(srv, "sb", { "SELECT 1 AS one" }) -- tenant sb's ordinary request
    local r = attack(srv, "sa", {
      ("SELECT set_config('app.scope', current_setting('x.t_%d', true), true)")
        :format(ids.sb),
      "SELECT name FROM boards",
    })
    local seen = {}
    for _, row in ipairs(r[2].rows or {}) do
      seen[#seen + 1] = row.name
    end
    assert.is_not.matches("marker%-sb", table.concat(seen, ","),
      "tenant sa read tenant sb's rows with sb's stolen scope")
  end)

  it("keeps core.users from tenant sa", function()
    -- a core transaction (a request naming no tenant: login, refresh, the
    -- platform routes) sets 2 settings (timeout, scope)
    local core = srv:request({ method = "POST", path = "/iso/sql",
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ sql = { "SELECT 1 AS one" } }) })
    assert.equal(200, core.status, core.body)
    local names = prepared("sa")
    assert.is_string(names[2])
    attack(srv, "sa", trap(names[2], 4))
    core = srv:request({ method = "POST", path = "/iso/sql",
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ sql = { "SELECT 1 AS one" } }) })
    assert.equal(200, core.status, core.body)
    local r = attack(srv, "sa", {
      "SELECT set_config('app.scope', current_setting('x.core', true), true)",
      "SELECT email AS name FROM core.users",
    })
    local seen = {}
    for _, row in ipairs(r[2].rows or {}) do
      seen[#seen + 1] = row.name
    end
    assert.is_not.matches("root@platform%.test", table.concat(seen, ","),
      "tenant sa read core.users with the stolen core scope")
  end)
end)

-- With the guard off (walls 2 and 3 alone): the runtime runs its scoping
-- statement, "SELECT set_config($1, $2, true), ...", as a named prepared
-- statement cached per connection. A statement that could DEALLOCATE it and
-- PREPARE its own under the same name would run in the next transaction of
-- another tenant, or of the core, and could keep that transaction's signed
-- scope in a session setting for the attacker's next request on the
-- connection. The names are random per connection and the request role
-- cannot list them (pg_prepared_statements), so no trap is ever run.
local h = require "helpers"
local iso = require "helpers.isolation"
local cjson = require "cjson"

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

describe("a prepared statement left on a pooled connection", function()
  local ctx, ids, srv

  setup(function()
    ctx, ids = iso.tenants("iso_prepared")
    h.psql("INSERT INTO core.users (email, password_hash, is_superuser) "
      .. "VALUES ('root@platform.test', 'not-a-hash', true)", ctx.owner_url)
    -- the guard off, one connection: every request below shares it
    srv = iso.start(ctx, { guard_off = true })
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  -- The runtime's statement names are not for the request role to read; its
  -- old names (rt_<n>) are tried instead, for the tenant scoping (8
  -- parameters) and the core one (4): the trap must never run.
  local function set_traps(code)
    local listed = iso.attack(srv, code, { "SELECT name FROM pg_prepared_statements" })[1]
    assert.equal("42501", listed.sqlstate)
    for n = 1, 12 do
      for _, nparams in ipairs({ 8, 4 }) do
        iso.attack(srv, code, trap("rt_" .. n, nparams))
      end
    end
  end

  local function read_as(code, scope_setting, sql)
    local r = iso.attack(srv, code, {
      ("SELECT set_config('app.scope', current_setting('%s', true), true)")
        :format(scope_setting),
      sql,
    })
    local seen = {}
    for _, row in ipairs(r[2].rows or {}) do
      seen[#seen + 1] = row.name
    end
    return table.concat(seen, ",")
  end

  it("keeps tenant sb's rows from tenant sa", function()
    set_traps("sa")
    iso.attack(srv, "sb", { "SELECT 1 AS one" }) -- tenant sb's ordinary request
    assert.is_not.matches("marker%-sb", read_as("sa", "x.t_" .. ids.sb,
      "SELECT name FROM boards"), "tenant sa read tenant sb's rows with sb's stolen scope")
  end)

  it("keeps core.users from tenant sa", function()
    set_traps("sa")
    -- a core transaction (a request naming no tenant: login, refresh, the
    -- platform routes)
    local core = srv:request({ method = "POST", path = "/iso/sql",
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ sql = { "SELECT 1 AS one" } }) })
    assert.equal(200, core.status, core.body)
    assert.is_not.matches("root@platform%.test", read_as("sa", "x.core",
      "SELECT email AS name FROM core.users"), "tenant sa read core.users with a stolen scope")
  end)

  it("closes a connection whose prepared statements were dropped", function()
    iso.attack(srv, "sa", { "DEALLOCATE ALL" })
    -- the runtime's statements are gone: the first use fails and the
    -- connection is closed; the next request gets a new one
    srv:request({ method = "POST", path = "/iso/sql", headers = { ["X-Tenant-Id"] = "sb",
      ["Content-Type"] = "application/json" }, body = '{"sql":["SELECT 1 AS one"]}' })
    local r = iso.attack(srv, "sb", { "SELECT name FROM boards" })[1]
    assert.equal("marker-sb", r.rows and r.rows[1] and r.rows[1].name, r.error)
  end)
end)

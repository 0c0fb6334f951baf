-- Helpers of the isolation specs (spec/09-isolation): tenants with a marker
-- row each, a server running the hostile fixture routes
-- (spec/fixtures/isolation), and a way to send them SQL as a tenant.
local h = require "helpers"
local mig = require "helpers.migrate"
local cjson = require "cjson"
local assert = require "luassert"

local M = {}

-- A database with the real migrations and the given tenants (default: two
-- shared ones, sa and sb), each with one boards row "marker-<code>".
-- Returns the context and the tenants' ids by code.
function M.tenants(name, list)
  list = list or { { code = "sa", isolation = "shared" }, { code = "sb", isolation = "shared" } }
  local ctx, ids = mig.new(name), {}
  assert(h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
    .. h.sh_quote(ctx.tenant_dir) .. "/"))
  local res = ctx:migrate("")
  assert.equal(0, res.code, mig.explain(res))
  for _, t in ipairs(list) do
    res = ctx:tenant_cmd({ "create", t.code, "--isolation", t.isolation })
    assert.equal(0, res.code, mig.explain(res))
    if t.isolation == "database" then
      ctx.databases[#ctx.databases + 1] = "t_" .. t.code
    end
    ids[t.code] = tonumber(h.psql("SELECT id FROM core.tenants WHERE code = '" .. t.code
      .. "'", ctx.owner_url))
    -- as the owner (trusted with plain app.tenant_id), in the tenant's storage
    local url, path = ctx.owner_url, t.isolation == "shared" and "shared" or "t_" .. t.code
    if t.isolation == "database" then
      url, path = mig.db_url(h.owner_url, "t_" .. t.code), "public"
    end
    h.psql(("BEGIN; SELECT set_config('search_path', '%s', true), "
      .. "set_config('app.tenant_id', '%d', true); INSERT INTO boards (code, name) "
      .. "VALUES ('marker', 'marker-%s'); COMMIT;"):format(path, ids[t.code], t.code), url)
  end
  return ctx, ids
end

-- Starts a server on the fixture routes. opts: guard_off, pool (default 1),
-- threads (default 1), database (more fields of the database section),
-- scripts (another scripts dir).
function M.start(ctx, opts)
  opts = opts or {}
  local env = { RUNTIME_TENANCY_SOURCES = "header" }
  if opts.guard_off then
    env.RUNTIME_TEST_SQLGUARD = "off"
  end
  local database = ("pool_size = %d"):format(opts.pool or 1)
  if opts.database then
    database = database .. ", " .. opts.database
  end
  return h.start({ database_url = ctx.app_url, threads = opts.threads or 1,
    scripts = opts.scripts or (h.root .. "/spec/fixtures/isolation"),
    database = database, env = env })
end

-- Sends statements to a route that runs them (default /iso/sql: each in a
-- savepoint) as tenant `code` (nil: no tenant); returns the results.
function M.attack(srv, code, statements, path)
  local r = srv:request({ method = "POST", path = path or "/iso/sql",
    headers = { ["X-Tenant-Id"] = code, ["Content-Type"] = "application/json" },
    body = cjson.encode({ sql = statements }) })
  assert.equal(200, r.status, r.body)
  return r.json.results
end

return M

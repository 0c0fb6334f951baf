-- HOLE: the SQL guard passes ts_stat() and ts_rewrite(), which run the SQL
-- text they are given (like query_to_xml, which is refused). Through them a
-- tenant statement calls set_config(..., false) and anything else the guard
-- refuses, with the guard on. Here tenant sa makes its pooled connection
-- read-only at session level; tenant sb's next write on that connection fails.
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

describe("guard hole: ts_stat/ts_rewrite run SQL text the guard never sees", function()
  local ctx, ids, srv

  setup(function()
    ctx, ids = setup_tenants("iso_ts_stat")
    srv = start(ctx) -- guard on, one connection
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  it("refuses ts_stat()/ts_rewrite() with SQL text in a request statement", function()
    local results = attack(srv, "sa", {
      "SELECT * FROM ts_stat('SELECT to_tsvector(set_config(''x.a'', ''1'', false))')",
      "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, "
        .. "set_config(''x.b'', ''1'', false)::tsquery')",
    })
    for i, r in ipairs(results) do
      assert.is_string(r.refused, "statement " .. i .. " ran: " .. cjson.encode(r))
    end
  end)

  it("leaves nothing of tenant sa's session state for tenant sb", function()
    attack(srv, "sa", {
      "SELECT * FROM ts_stat('SELECT to_tsvector(set_config("
        .. "''default_transaction_read_only'', ''on'', false))')",
    })
    local r = attack(srv, "sb", {
      "INSERT INTO boards (code, name) VALUES ('after', 'after') RETURNING name",
    })[1]
    assert.is_nil(r.error, "tenant sb's write failed on sa's connection: " .. cjson.encode(r))
    assert.equal("after", r.rows[1].name)
    assert.is_number(ids.sb)
  end)
end)

-- An UPDATE of pg_settings is set_config(name, value, false) by the view's
-- rule: the guard refuses any statement naming pg_settings and the request role
-- may not update it. With it, tenant sa turned its own statement_timeout off,
-- or left default_transaction_read_only on its pooled connection so that
-- tenant sb's next write failed. (Found in review: the guard passed it, an
-- UPDATE with no function call.)
local iso = require "helpers.isolation"
local cjson = require "cjson"

describe("UPDATE pg_settings, which is set_config(..., false)", function()
  local ctx, ids, srv

  setup(function()
    ctx, ids = iso.tenants("iso_pg_settings")
    srv = iso.start(ctx, { database = "statement_timeout_ms = 300" }) -- guard on
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  it("refuses UPDATE pg_settings in a request statement", function()
    local r = iso.attack(srv, "sa", {
      "UPDATE pg_settings SET setting = 'rt-review' WHERE name = 'application_name'",
    })[1]
    assert.is_string(r.refused, "ran: " .. cjson.encode(r))
  end)

  it("keeps a request within database.statement_timeout_ms", function()
    local r = srv:request({ method = "POST", path = "/iso/raw",
      headers = { ["X-Tenant-Id"] = "sa", ["Content-Type"] = "application/json" },
      body = cjson.encode({ sql = {
        "UPDATE pg_settings SET setting = '0' WHERE name = 'statement_timeout'",
        "SELECT pg_sleep(1) IS NULL AS slept" } }) })
    local slept = r.status == 200 and r.json.results[2].rows
    assert.is_falsy(slept, "slept 1 s past the 300 ms statement timeout: " .. r.body)
  end)

  it("leaves nothing of tenant sa's session state for tenant sb", function()
    iso.attack(srv, "sa", {
      "UPDATE pg_settings SET setting = 'on' WHERE name = 'default_transaction_read_only'",
    })
    -- tenant sb, next on the same (only) connection
    local r = srv:request({ method = "POST", path = "/iso/raw",
      headers = { ["X-Tenant-Id"] = "sb", ["Content-Type"] = "application/json" },
      body = cjson.encode({ sql = {
        "INSERT INTO boards (code, name) VALUES ('after', 'after') RETURNING name" } }) })
    assert.equal(200, r.status, "tenant sb's write failed on sa's connection: " .. r.body)
    assert.equal("after", r.json.results[1].rows[1].name)
    assert.is_number(ids.sb)
  end)
end)

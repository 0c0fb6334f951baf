-- ts_stat() and ts_rewrite() run the SQL text they are given (like
-- query_to_xml), so the guard refuses them and the request role may not
-- execute them: with them, a tenant statement could call set_config(...,
-- false), leaving its pooled connection read-only at session level so that
-- tenant sb's next write there failed. (Found in review: the guard passed
-- them.)
local iso = require "helpers.isolation"
local cjson = require "cjson"

describe("ts_stat and ts_rewrite, which run SQL text", function()
  local ctx, ids, srv

  setup(function()
    ctx, ids = iso.tenants("iso_ts_stat")
    srv = iso.start(ctx) -- guard on, one connection
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  it("refuses ts_stat()/ts_rewrite() with SQL text in a request statement", function()
    local results = iso.attack(srv, "sa", {
      "SELECT * FROM ts_stat('SELECT to_tsvector(set_config(''x.a'', ''1'', false))')",
      "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, "
        .. "set_config(''x.b'', ''1'', false)::tsquery')",
    })
    for i, r in ipairs(results) do
      assert.is_string(r.refused, "statement " .. i .. " ran: " .. cjson.encode(r))
    end
  end)

  it("leaves nothing of tenant sa's session state for tenant sb", function()
    iso.attack(srv, "sa", {
      "SELECT * FROM ts_stat('SELECT to_tsvector(set_config("
        .. "''default_transaction_read_only'', ''on'', false))')",
    })
    local r = iso.attack(srv, "sb", {
      "INSERT INTO boards (code, name) VALUES ('after', 'after') RETURNING name",
    })[1]
    assert.is_nil(r.error, "tenant sb's write failed on sa's connection: " .. cjson.encode(r))
    assert.equal("after", r.rows[1].name)
    assert.is_number(ids.sb)
  end)
end)

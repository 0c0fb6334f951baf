-- Route files have no side effects when required, so a handler can be
-- called with a plain req table and a stub rt.db.
describe("scripts/api/info.lua", function()
  local routes, calls

  setup(function()
    calls = {}
    package.loaded["rt.db"] = {
      query_one = function(sql, ...)
        calls[#calls + 1] = { sql = sql, n = select("#", ...) }
        return { postgres_version = "15.4" }
      end,
    }
    routes = dofile("scripts/api/info.lua")
  end)

  teardown(function()
    package.loaded["rt.db"] = nil
  end)

  it("declares a public GET route that answers unknown tenants alike", function()
    local route = routes["/api/v1/info"].GET
    assert.equal("public", route.scope)
    assert.is_true(route.unknown_tenant)
    assert.is_function(route.handler)
  end)

  it("returns the database row and the request id", function()
    local res = routes["/api/v1/info"].GET.handler({ id = "req-1" })
    assert.equal("req-1", res.json.request_id)
    assert.same({ postgres_version = "15.4" }, res.json.database)
    assert.equal(1, #calls)
    assert.equal(0, calls[1].n)
  end)

  it("tells nothing about the tenant the request named", function()
    local tenant = { id = 3, code = "acme", name = "Acme", isolation = "schema",
      settings = { admin_email = "boss@acme.test" } }
    local named = routes["/api/v1/info"].GET.handler({ id = "req-3", tenant = tenant })
    local unknown = routes["/api/v1/info"].GET.handler({ id = "req-3",
      tenant_unknown = true })
    local none = routes["/api/v1/info"].GET.handler({ id = "req-3" })
    assert.same(none.json, named.json)
    assert.same(none.json, unknown.json)
    assert.is_nil(named.json.tenant)
  end)

  it("passes a database failure on as nil, err", function()
    package.loaded["rt.db"].query_one = function()
      return nil, "connection refused"
    end
    routes = dofile("scripts/api/info.lua")
    local res, err = routes["/api/v1/info"].GET.handler({ id = "req-2" })
    assert.is_nil(res)
    assert.equal("connection refused", err)
  end)
end)

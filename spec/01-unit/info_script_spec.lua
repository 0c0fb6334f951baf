-- Route files have no side effects when required, so a handler can be
-- called with a plain req table and a stub rt.db.
describe("scripts/api/info.lua", function()
  local routes, calls

  setup(function()
    calls = {}
    package.loaded["rt.db"] = {
      query_one = function(sql, ...)
        calls[#calls + 1] = { sql = sql, n = select("#", ...) }
        return { database = "runtime", role = "rt_app" }
      end,
    }
    routes = dofile("scripts/api/info.lua")
  end)

  teardown(function()
    package.loaded["rt.db"] = nil
  end)

  it("declares a public GET route", function()
    local route = routes["/api/v1/info"].GET
    assert.equal("public", route.scope)
    assert.is_function(route.handler)
  end)

  it("returns the database row and the request id", function()
    local res = routes["/api/v1/info"].GET.handler({ id = "req-1" })
    assert.equal("req-1", res.json.request_id)
    assert.equal("rt_app", res.json.database.role)
    assert.equal(1, #calls)
    assert.equal(0, calls[1].n)
  end)

  it("shows the tenant the request named", function()
    local tenant = { id = 3, code = "acme", isolation = "schema" }
    local res = routes["/api/v1/info"].GET.handler({ id = "req-3", tenant = tenant })
    assert.same(tenant, res.json.tenant)
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

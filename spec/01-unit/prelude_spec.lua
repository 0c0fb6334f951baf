-- The prelude (runtime/lua/prelude.lua) in plain Lua: route-table
-- validation and the dispatch contract the C side relies on.
local cjson = require "cjson"

local prelude = assert(loadfile("runtime/lua/prelude.lua"))(
  debug.traceback, cjson.encode, cjson.decode, { null = cjson.null })

local function req(fields)
  local r = { method = "GET", path = "/", params = {}, query = {}, headers = {}, id = "t" }
  for k, v in pairs(fields or {}) do
    r[k] = v
  end
  return r
end

describe("prelude.collect", function()
  local function handler() end

  it("flattens route tables in a stable order with defaults", function()
    local routes = prelude.collect("f.lua", {
      ["/b"] = { POST = handler, GET = { handler = handler, scope = "any",
        permission = "b_read", summary = "B" } },
      ["/a/:id"] = { DELETE = handler },
    })
    assert.equal(3, #routes)
    assert.same({ "/a/:id", "DELETE", "tenant" },
      { routes[1].pattern, routes[1].method, routes[1].scope })
    assert.same({ "/b", "GET", "any", "b_read" },
      { routes[2].pattern, routes[2].method, routes[2].scope, routes[2].permission })
    assert.equal("POST", routes[3].method)
  end)

  it("keeps a route's lane: offload false, true or \"admin\"", function()
    local routes = prelude.collect("f.lua", {
      ["/a"] = { GET = handler },
      ["/b"] = { POST = { handler = handler, offload = true } },
      ["/c"] = { POST = { handler = handler, offload = "admin" } },
    })
    assert.same({ false, true, "admin" },
      { routes[1].offload, routes[2].offload, routes[3].offload })
  end)

  it("rejects what is not a route table, naming file and route", function()
    local cases = {
      { 42, "must return a table" },
      { { ["/x"] = 1 }, "route /x must map methods" },
      { { ["/x"] = { FETCH = handler } }, "FETCH /x: unknown method" },
      { { ["/x"] = { get = handler } }, "route get /x: unknown method" },
      { { ["/x"] = { GET = { scope = "public" } } }, "missing handler" },
      { { ["/x"] = { GET = { handler = handler, scope = "world" } } }, "scope must be" },
      { { ["/x"] = { GET = { handler = handler, permision = "a" } } },
        "unknown field 'permision'" },
      { { ["/x"] = { GET = { handler = handler, permission = 1 } } },
        "'permission' must be a string" },
      { { ["/x"] = { GET = { handler = handler, offload = "slow" } } },
        "'offload' must be true, false or \"admin\"" },
      { { ["/x"] = { GET = { handler = handler, offload = 1 } } },
        "'offload' must be true, false or \"admin\"" },
      { { ["/healthz"] = { GET = handler } }, "reserved" },
      { { ["/x"] = { GET = { handler = handler, scope = "public", permission = "a_read" } } },
        "a public route cannot require a permission" },
      { { [1] = {} }, "keys must be strings" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(prelude.collect, "f.lua", case[1])
      assert.is_false(ok)
      assert.truthy(err:find("f.lua", 1, true), err)
      assert.truthy(err:find(case[2], 1, true), err)
    end
  end)
end)

describe("prelude.dispatch", function()
  it("encodes a json response", function()
    local kind, status, body, ctype, headers = prelude.dispatch(function()
      return { status = 201, json = { a = 1 }, headers = { ["X-A"] = "b", ["X-N"] = 5 } }
    end, req())
    assert.equal("ok", kind)
    assert.equal(201, status)
    assert.same({ a = 1 }, cjson.decode(body))
    assert.equal("application/json", ctype)
    local h = {}
    for i = 1, #headers, 2 do
      h[headers[i]] = headers[i + 1]
    end
    assert.same({ ["X-A"] = "b", ["X-N"] = "5" }, h)
  end)

  it("defaults to 200 and text for a string body", function()
    local kind, status, body, ctype = prelude.dispatch(function()
      return { body = "hi" }
    end, req())
    assert.same({ "ok", 200, "hi", "text/plain; charset=utf-8" }, { kind, status, body, ctype })
  end)

  it("reports errors, nil-err returns and bad responses apart", function()
    local kind, text = prelude.dispatch(function() error("oops") end, req())
    assert.equal("error", kind)
    assert.matches("oops", text)
    assert.matches("traceback", text)
    kind, text = prelude.dispatch(function() return nil, "db down" end, req())
    assert.same({ "fail", "handler failed: db down" }, { kind, text })
    for _, bad in ipairs({ { status = 99 }, { status = "200" }, { body = {} },
      { headers = { ["Bad Name"] = "x" } }, { headers = { X = "a\r\nb" } },
      { json = function() end } }) do
      kind = prelude.dispatch(function() return bad end, req())
      assert.equal("error", kind)
    end
  end)

  it("decodes JSON bodies once and maps bad input to 4xx", function()
    local calls = 0
    local kind, _, body = prelude.dispatch(function(r)
      calls = calls + 1
      return { json = { same = r.json() == r.json(), v = r.json().v } }
    end, req({ body = '{"v":3}', headers = { ["content-type"] = "application/json; charset=utf-8" } }))
    assert.equal("ok", kind)
    assert.same({ same = true, v = 3 }, cjson.decode(body))
    local function try(headers, b)
      return { prelude.dispatch(function(r) return { json = r.json() } end,
        req({ headers = headers, body = b })) }
    end
    assert.same({ "http_error", 415 }, { table.unpack(try({}, "{}"), 1, 2) })
    -- the body of an http_error is the one error shape, built by the prelude
    local bad = try({ ["content-type"] = "application/json" }, "{")
    assert.same({ "http_error", 400 }, { bad[1], bad[2] })
    assert.equal("invalid_json", cjson.decode(bad[3]).error)
    bad = try({ ["content-type"] = "application/json" }, "")
    assert.equal("invalid_json", cjson.decode(bad[3]).error)
    assert.equal("ok", try({ ["content-type"] = "application/problem+json" }, "[]")[1])
    assert.equal(1, calls)
  end)
end)

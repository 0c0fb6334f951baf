-- Hard limits and malformed input: each gets the right status and the
-- server keeps serving.
local h = require "helpers"

describe("request limits", function()
  local srv

  setup(function()
    srv = h.start({ max_body = 1024 })
  end)

  teardown(function()
    srv:stop()
  end)

  local json_headers = { ["Content-Type"] = "application/json" }

  it("accepts a JSON body under the limit", function()
    local r = srv:request({ method = "POST", path = "/echo/a/b", headers = json_headers,
      body = '{"k":[1,2,{"x":null}]}' })
    assert.equal(200, r.status)
    assert.same({ 1, 2, { x = require("cjson").null } }, r.json.got.k)
  end)

  it("gives 413 for a body over http.max_body (Content-Length)", function()
    local r = srv:request({ method = "POST", path = "/echo/a/b", headers = json_headers,
      body = string.rep("x", 2048) })
    assert.equal(413, r.status)
    assert.equal("payload_too_large", r.json.error)
  end)

  it("gives 413 for a chunked body over the limit", function()
    local r = srv:request({ method = "POST", path = "/echo/a/b",
      headers = { ["Content-Type"] = "application/json", ["Transfer-Encoding"] = "chunked" },
      body = string.rep("y", 4096) })
    assert.equal(413, r.status)
  end)

  it("gives 400 for invalid JSON", function()
    local r = srv:request({ method = "POST", path = "/echo/a/b", headers = json_headers,
      body = '{"k": ' })
    assert.equal(400, r.status)
    assert.equal("invalid_json", r.json.error)
  end)

  it("gives 400 for an empty JSON body", function()
    local r = srv:request({ method = "POST", path = "/echo/a/b", headers = json_headers,
      body = "" })
    assert.equal(400, r.status)
  end)

  it("gives 415 for a body that is not JSON", function()
    local r = srv:request({ method = "POST", path = "/echo/a/b",
      headers = { ["Content-Type"] = "text/plain" }, body = "{}" })
    assert.equal(415, r.status)
    assert.equal("unsupported_media_type", r.json.error)
  end)

  it("refuses JSON nested deeper than json.max_depth", function()
    local deep = string.rep("[", 200) .. string.rep("]", 200)
    local r = srv:request({ method = "POST", path = "/echo/a/b", headers = json_headers,
      body = deep })
    assert.equal(400, r.status)
  end)

  it("gives 431 for headers over the connection memory limit", function()
    local r = srv:request({ path = "/echo/a/b",
      headers = { ["X-Big"] = string.rep("h", 40000) } })
    assert.equal(431, r.status)
  end)

  it("gives 414 for a request line over the connection memory limit", function()
    local r = srv:request({ path = "/echo/a/" .. string.rep("u", 40000) })
    assert.equal(414, r.status)
  end)

  it("keeps serving after all of that", function()
    assert.equal(200, srv:request({ path = "/healthz" }).status)
    assert.is_true(srv:alive())
  end)
end)

describe("connection limits", function()
  it("refuses connections over http.per_ip_connection_limit, then recovers", function()
    local srv = h.start({ env = { RUNTIME_HTTP_PER_IP_CONNECTION_LIMIT = "2" } })
    -- Two idle connections held open from 127.0.0.1 use up the allowance.
    local hold = string.format(
      "bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; sleep 1.5' >/dev/null 2>&1 &", srv.port)
    os.execute(hold)
    os.execute(hold)
    h.sleep(0.3)
    local refused = srv:request({ path = "/healthz" })
    h.sleep(1.6)
    local after = srv:request({ path = "/healthz" })
    srv:stop()
    assert.equal(0, refused.status) -- closed without an answer
    assert.equal(200, after.status)
  end)
end)

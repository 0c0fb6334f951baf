-- The offload lanes: password hashing (offload = true) and admin work
-- (offload = "admin") run on threads of their own, so a long provisioning
-- or migration never queues a login, and each lane refuses what belongs to
-- the other.
local h = require "helpers"

describe("offload lanes", function()
  local srv

  setup(function()
    -- One thread per lane: with a shared lane the hash would wait for the sleep.
    srv = h.start({ scripts = h.root .. "/spec/fixtures/lanes", env = {
      RUNTIME_HTTP_OFFLOAD_THREADS = "1", RUNTIME_HTTP_ADMIN_THREADS = "1" } })
  end)

  teardown(function()
    srv:stop()
  end)

  local function sleeping()
    return tonumber(h.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
      .. "'%lanes_spec%' AND query NOT LIKE '%pg_stat_activity%'", h.admin_url))
  end

  it("answers a password hash while the admin lane is busy", function()
    local out, code = os.tmpname(), os.tmpname()
    h.run(string.format("curl -s -X POST -o %s -w '%%{http_code}' "
      .. "'http://127.0.0.1:%d/lanes/sleep?s=4' >%s 2>/dev/null &",
      h.sh_quote(out), srv.port, h.sh_quote(code)))
    for _ = 1, 100 do
      if sleeping() > 0 then
        break
      end
      h.sleep(0.05)
    end
    assert.equal(1, sleeping())

    local r = srv:request({ method = "POST", path = "/lanes/hash" })
    assert.equal(200, r.status)
    assert.is_true(r.json.verified)
    -- The admin request is still running: the hash did not wait for it.
    assert.equal(1, sleeping())
    assert.equal("", h.read_all(code))

    for _ = 1, 200 do
      if h.read_all(code) ~= "" then
        break
      end
      h.sleep(0.05)
    end
    assert.equal("200", h.read_all(code))
    assert.same({ slept = true }, require("cjson").decode(h.read_all(out)))
    os.remove(out)
    os.remove(code)
  end)

  it("hashes on the admin lane too, never on an HTTP thread", function()
    local r = srv:request({ method = "POST", path = "/lanes/hash-on-admin" })
    assert.equal(200, r.status)
    assert.is_true(r.json.verified)
    r = srv:request({ method = "POST", path = "/lanes/hash-on-http" })
    assert.equal(500, r.status)
    assert.truthy(srv:logs():find("rt.auth.hash_password: declare the route with "
      .. "offload = true", 1, true))
  end)

  it("keeps rt.tenant's slow calls to the admin lane", function()
    local r = srv:request({ method = "POST", path = "/lanes/migrate-on-offload" })
    assert.equal(500, r.status)
    -- (the log is JSON: the quotes are escaped)
    assert.truthy(srv:logs():find('rt.tenant.migrate: declare the route with '
      .. 'offload = \\"admin\\"', 1, true))
  end)
end)

-- Tenants created over HTTP take a pre-made spare schema, and the server makes
-- the next spares in the background, as `runtime tenant create` does, without
-- holding up the answer and without two refills at once.
local h = require "helpers"
local platform = require "helpers.platform"

describe("pre-made storage after HTTP creates", function()
  local env, admin

  local function spares()
    return tonumber(env.ctx:sql("SELECT count(*) FROM pg_namespace "
      .. "WHERE nspname LIKE 'rt\\_spare\\_%'"))
  end

  local function create(name)
    local r = env:call("POST", "/api/v1/tenants", admin, { tenant_name = name })
    assert.equal(201, r.status, r.body)
    return r
  end

  -- Waits (up to about 20 s: two schemas migrated on a busy machine) until
  -- the count is n; returns the count seen last.
  local function settle(n)
    local seen
    for _ = 1, 200 do
      seen = spares()
      if seen == n then
        return seen
      end
      h.sleep(0.1)
    end
    return seen
  end

  setup(function()
    env = platform.new("http_spares")
    admin = env:admin_token()
  end)

  teardown(function()
    env:destroy()
  end)

  it("refills tenancy.spare_schemas after each create", function()
    assert.equal(0, spares())
    create("First Co") -- no spare yet: made in place, then two spares behind it
    assert.equal(2, settle(2))
    local before = env.ctx:sql("SELECT string_agg(nspname, ',' ORDER BY nspname) "
      .. "FROM pg_namespace WHERE nspname LIKE 'rt\\_spare\\_%'")
    create("Second Co") -- takes one of them (a refill makes new names)
    assert.equal("1", env.ctx:sql("SELECT count(*) FROM pg_namespace WHERE nspname = ANY "
      .. "(string_to_array('" .. before .. "', ','))"))
    assert.equal(2, settle(2))
  end)

  it("runs one refill at a time: creates at once end with exactly the spares asked", function()
    local done = {}
    for i = 1, 3 do
      done[i] = os.tmpname()
      h.run("(curl -s -o /dev/null -X POST -H 'Content-Type: application/json' "
        .. "-H " .. h.sh_quote("Authorization: Bearer " .. admin) .. " --data-binary "
        .. h.sh_quote('{"tenant_name": "Burst ' .. i .. '"}') .. " "
        .. h.sh_quote("http://127.0.0.1:" .. env.srv.port .. "/api/v1/tenants")
        .. " -w '%{http_code}' >" .. h.sh_quote(done[i]) .. ") </dev/null >/dev/null 2>&1 &")
    end
    for i = 1, 3 do
      for _ = 1, 300 do
        if (h.read_all(done[i]) or "") ~= "" then
          break
        end
        h.sleep(0.1)
      end
      assert.equal("201", h.read_all(done[i]))
      os.remove(done[i])
    end
    assert.equal(2, settle(2))
    h.sleep(1) -- nothing more is made afterwards
    assert.equal(2, spares())
    assert.equal("5", env.ctx:sql("SELECT count(*) FROM core.tenants WHERE status = 'active'"))
  end)
end)

-- Tenant resolution and scoping on the request path, against real tenants in
-- all three isolation modes: identifiers are checked before any SQL, unknown
-- is 404, suspended 403, disagreeing sources 400, and every transaction is
-- scoped to its tenant so no request sees another tenant's rows.
local h = require "helpers"
local mig = require "helpers.migrate"
local cjson = require "cjson"

describe("tenant resolution", function()
  local ctx, srv
  local ids = {}

  local function tenant(args)
    local res = ctx:tenant_cmd(args)
    assert.equal(0, res.code, mig.explain(res))
  end

  setup(function()
    ctx = mig.new("resolution")
    assert(h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
      .. h.sh_quote(ctx.tenant_dir) .. "/"))
    assert.equal(0, ctx:migrate("").code)
    tenant({ "create", "acme", "--subdomain", "acme", "--domain", "shop.test" })
    tenant({ "create", "beta" })
    tenant({ "create", "gamma", "--isolation", "database" })
    ctx.databases[#ctx.databases + 1] = "t_gamma"
    tenant({ "create", "delta", "--isolation", "shared" })
    tenant({ "create", "epsilon", "--isolation", "shared" })
    tenant({ "create", "sus" })
    tenant({ "suspend", "sus" })
    for _, code in ipairs({ "acme", "beta", "gamma", "delta", "epsilon" }) do
      ids[code] = tonumber(h.psql("SELECT id FROM core.tenants WHERE code = '" .. code
        .. "'", ctx.owner_url))
    end
    srv = h.start({
      database_url = ctx.app_url,
      threads = 4,
      database = "pool_size = 2",
      env = {
        RUNTIME_TENANCY_SOURCES = "path,header,subdomain,domain,token",
        RUNTIME_AUTH_JWT_SECRET = "spec-secret-0123456789abcdef0123456789",
        RUNTIME_TENANCY_BASE_DOMAIN = "example.test",
        RUNTIME_TENANCY_REFRESH_MS = "100",
      },
    })
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  local function get(path, headers)
    return srv:request({ path = path, headers = headers })
  end

  it("scopes the transaction to the tenant named by X-Tenant-Id (code or id)", function()
    for _, v in ipairs({ "acme", tostring(ids.acme) }) do
      local r = get("/t/whoami", { ["X-Tenant-Id"] = v })
      assert.equal(200, r.status)
      assert.equal("acme", r.json.tenant.code)
      assert.equal("schema", r.json.tenant.isolation)
      assert.equal('"t_acme"', r.json.db.search_path)
      assert.equal(tostring(ids.acme), r.json.db.tenant_id)
    end
    local r = get("/t/whoami", { ["X-Tenant-Id"] = "gamma" })
    assert.equal('"public"', r.json.db.search_path)
    r = get("/t/whoami", { ["X-Tenant-Id"] = "delta" })
    assert.equal('"shared"', r.json.db.search_path)
  end)

  it("resolves from the path, a subdomain and a custom domain", function()
    assert.equal("beta", get("/tenants/beta/whoami").json.tenant.code)
    assert.equal("acme", get("/t/whoami", { Host = "acme.example.test" }).json.tenant.code)
    assert.equal("acme", get("/t/whoami", { Host = "shop.test:8080" }).json.tenant.code)
    -- the platform's own host names name no tenant
    assert.is_nil(get("/t/whoami", { Host = "example.test" }).json.tenant)
    assert.is_nil(get("/t/whoami", { Host = "api.platform.test" }).json.tenant)
    assert.equal("", get("/t/whoami").json.db.tenant_id)
  end)

  it("answers 400 for malformed identifiers before any SQL", function()
    for _, bad in ipairs({ "ACME", "a;b", "a b", "a/b", "a@b", "'acme'", "a?b", "-1",
      "0", string.rep("a", 41), "acme\"" }) do
      local r = get("/t/whoami", { ["X-Tenant-Id"] = bad })
      assert.equal(400, r.status, bad)
      assert.equal("invalid_tenant", r.json.error)
    end
    assert.equal(400, get("/tenants/A%20B/whoami").status)
    assert.equal(400, get("/t/whoami", { Host = "a.b.example.test" }).status)
  end)

  it("answers 404 for unknown tenants and 403 for suspended ones", function()
    assert.equal(404, get("/t/whoami", { ["X-Tenant-Id"] = "nobody" }).status)
    assert.equal(404, get("/t/whoami", { ["X-Tenant-Id"] = "999999" }).status)
    assert.equal(404, get("/t/whoami", { Host = "nobody.example.test" }).status)
    local r = get("/t/whoami", { ["X-Tenant-Id"] = "sus" })
    assert.equal(403, r.status)
    assert.equal("tenant_suspended", r.json.error)
  end)

  it("answers 400 when two sources disagree, and never falls back", function()
    local r = get("/tenants/beta/whoami", { ["X-Tenant-Id"] = "acme" })
    assert.equal(400, r.status)
    assert.equal("tenant_conflict", r.json.error)
    assert.equal(400, get("/t/whoami", { ["X-Tenant-Id"] = "beta",
      Host = "acme.example.test" }).status)
    assert.equal(200, get("/tenants/acme/whoami", { ["X-Tenant-Id"] = "acme" }).status)
  end)

  it("opens no connection for bogus or unknown identifiers", function()
    for _, v in ipairs({ "t_evil", "nobody", "x'; DROP DATABASE x; --" }) do
      get("/t/whoami", { ["X-Tenant-Id"] = v })
    end
    assert.equal("0", h.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = "
      .. "'rt_app' AND datname NOT IN ('" .. ctx.dbname .. "', 't_gamma')", h.admin_url))
  end)

  it("keeps every tenant's rows apart, with the same usernames and emails", function()
    local codes = { "acme", "beta", "gamma", "delta", "epsilon" }
    for _, code in ipairs(codes) do
      local r = srv:request({ method = "POST", path = "/t/users",
        headers = { ["X-Tenant-Id"] = code, ["Content-Type"] = "application/json" },
        body = cjson.encode({ username = "same", email = "same@example.test" }) })
      assert.equal(201, r.status, code)
      assert.equal(ids[code], r.json.tenant_id)
    end
    -- 200 reads spread over the five tenants, 16 at a time, through a pool of 2.
    local dir = (h.run("mktemp -d"):gsub("%s+$", ""))
    local list = {}
    for i = 1, 200 do
      list[#list + 1] = codes[(i % #codes) + 1] .. " " .. i
    end
    h.write_all(dir .. "/jobs", table.concat(list, "\n") .. "\n")
    h.run(string.format("xargs -P 16 -L 1 sh -c 'curl -s -H \"X-Tenant-Id: $0\" "
      .. "http://127.0.0.1:%d/t/users > %s/out.$1' < %s/jobs", srv.port, dir, dir))
    local checked = 0
    for i = 1, 200 do
      local code = codes[(i % #codes) + 1]
      local body = cjson.decode(h.read_all(dir .. "/out." .. i))
      assert.equal(ids[code], body.tenant)
      assert.equal(1, #body.users, code)
      for _, u in ipairs(body.users) do
        assert.equal(ids[code], u.tenant_id)
      end
      checked = checked + 1
    end
    h.run("rm -rf " .. h.sh_quote(dir))
    assert.equal(200, checked)
  end)

  it("carries no tenant context past an aborted transaction", function()
    local one = h.start({ database_url = ctx.app_url, threads = 1,
      database = "pool_size = 1" })
    for _ = 1, 3 do
      assert.equal(500, one:request({ path = "/t/abort",
        headers = { ["X-Tenant-Id"] = "acme" } }).status)
      local r = one:request({ path = "/t/whoami" })
      assert.equal(200, r.status)
      assert.equal("", r.json.db.tenant_id)
      assert.not_matches("t_acme", r.json.db.search_path)
      r = one:request({ path = "/t/users" })
      assert.equal(500, r.status) -- no tenant: no users table on the path
    end
    one:stop()
  end)

  it("refuses set_config, SET search_path and RESET ROLE from endpoints", function()
    for _, how in ipairs({ "set_config", "search_path", "reset_role" }) do
      local r = get("/t/escape/" .. how, { ["X-Tenant-Id"] = "acme",
        ["X-Request-Id"] = "esc-" .. how })
      assert.equal(500, r.status, how)
    end
    h.sleep(0.1)
    local logs = srv:logs()
    assert.matches('"request_id":"esc%-set_config"[^\n]*set_config%(%) is not allowed',
      logs)
    assert.matches('"request_id":"esc%-search_path"[^\n]*SET is not allowed', logs)
    assert.matches('"request_id":"esc%-reset_role"[^\n]*RESET is not allowed', logs)
  end)

  it("notices suspended and reactivated tenants without a restart", function()
    tenant({ "suspend", "beta" })
    h.sleep(0.4)
    assert.equal(403, get("/t/whoami", { ["X-Tenant-Id"] = "beta" }).status)
    tenant({ "activate", "beta" })
    h.sleep(0.4)
    assert.equal(200, get("/t/whoami", { ["X-Tenant-Id"] = "beta" }).status)
  end)

  it("resolves the tenant before authenticating", function()
    assert.equal(404, get("/private", { ["X-Tenant-Id"] = "nobody" }).status)
    assert.equal(401, get("/private").status)
    assert.equal(401, get("/private", { ["X-Tenant-Id"] = "acme" }).status)
  end)

  describe("with bearer tokens", function()
    local function mint(claims)
      local r = srv:request({ method = "POST", path = "/token",
        headers = { ["Content-Type"] = "application/json" }, body = cjson.encode(claims) })
      assert.equal(200, r.status, r.body)
      return r.json.token
    end

    local bearer = h.bearer

    local function b64url(s)
      local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
      return ((s:gsub(".", function(c)
        local b = c:byte()
        local bits = ""
        for i = 7, 0, -1 do
          bits = bits .. ((b >> i) & 1)
        end
        return bits
      end) .. "0000"):gsub("%d%d%d%d%d%d", function(six)
        return chars:sub(tonumber(six, 2) + 1, tonumber(six, 2) + 1)
      end))
    end

    it("serves a tenant route with a token for the named tenant", function()
      local t = mint({ sub = "101", scope = "tenant", tid = ids.acme })
      local r = get("/private", bearer(t, { ["X-Tenant-Id"] = "acme" }))
      assert.equal(200, r.status)
      assert.equal("acme", r.json.tenant)
      assert.equal("101", r.json.user.id)
      assert.equal(ids.acme, r.json.user.tid)
    end)

    it("takes the tenant from the token when no other source names one", function()
      local t = mint({ sub = "102", scope = "tenant", tid = ids.gamma })
      local r = get("/private", bearer(t))
      assert.equal(200, r.status)
      assert.equal("gamma", r.json.tenant)
    end)

    it("answers 403 for a token of another tenant, and for the wrong scope", function()
      local beta = mint({ sub = "103", scope = "tenant", tid = ids.beta })
      local r = get("/private", bearer(beta, { ["X-Tenant-Id"] = "acme" }))
      assert.equal(403, r.status)
      local core = mint({ sub = "1", scope = "core" })
      assert.equal(403, get("/private", bearer(core, { ["X-Tenant-Id"] = "acme" })).status)
      assert.equal(403, get("/core/whoami", bearer(beta)).status)
      r = get("/core/whoami", bearer(core))
      assert.equal(200, r.status)
      assert.equal("core", r.json.user.scope)
      assert.is_nil(r.json.tenant)
      assert.equal(200, get("/any/whoami", bearer(core)).status)
      assert.equal("beta", get("/any/whoami", bearer(beta)).json.tenant)
    end)

    it("answers 403 for a suspended tenant's token", function()
      local id = tonumber(h.psql("SELECT id FROM core.tenants WHERE code = 'sus'",
        ctx.owner_url))
      local t = mint({ sub = "104", scope = "tenant", tid = id })
      assert.equal(403, get("/private", bearer(t)).status)
    end)

    it("answers one 401 for every bad token", function()
      local good = mint({ sub = "105", scope = "tenant", tid = ids.acme })
      local header, payload = good:match("^([^.]+)%.([^.]+)%.")
      local none = b64url('{"alg":"none","typ":"JWT"}') .. "." .. payload .. "."
      local hs512 = b64url('{"alg":"HS512","typ":"JWT"}') .. "." .. payload .. "."
        .. good:match("[^.]+$")
      local tampered = header .. "." .. payload:sub(1, -3) .. "AA." .. good:match("[^.]+$")
      local bodies = {}
      for _, bad in ipairs({ "garbage", none, hs512, tampered, good .. "x" }) do
        local r = get("/private", bearer(bad, { ["X-Tenant-Id"] = "acme" }))
        assert.equal(401, r.status, bad)
        bodies[#bodies + 1] = r.json.message
      end
      for _, m in ipairs(bodies) do
        assert.equal(bodies[1], m)
      end
      assert.equal(401, get("/private", { Authorization = "Basic eDp5",
        ["X-Tenant-Id"] = "acme" }).status)
    end)
  end)
end)

-- Authentication end to end against the real binary and PostgreSQL: platform
-- and tenant registration and login (JSON and form), the one 401 for every
-- failure with comparable timing, lockout, refresh rotation and reuse,
-- logout, forged tokens, scope and tenant binding, platform API keys, and the
-- first superuser from the command line.
local h = require "helpers"
local mig = require "helpers.migrate"
local jwt = require "helpers.jwt"
local cjson = require "cjson"

local SECRET = "spec-secret-0123456789abcdef0123456789"
local PASSWORD = "correct horse battery"

-- An HS256 token over claims, signed with key (openssl, not the runtime).
local function forge(claims, key, alg)
  return jwt.forge(claims, { alg = alg or "HS256" }, key)
end

describe("auth", function()
  local ctx, srv
  local ids = {}

  local function json_req(method, path, body, headers)
    local hdr = { ["Content-Type"] = "application/json" }
    for k, v in pairs(headers or {}) do
      hdr[k] = v
    end
    return srv:request({ method = method, path = path, headers = hdr,
      body = body and cjson.encode(body) or nil })
  end

  local bearer = h.bearer

  local function login(user, password, tenant)
    return json_req("POST", "/api/v1/auth/login", { username = user, password = password },
      tenant and { ["X-Tenant-Id"] = tenant } or nil)
  end

  local function me(token, extra)
    return srv:request({ path = "/api/v1/auth/me", headers = bearer(token, extra) })
  end

  setup(function()
    ctx = mig.new("auth")
    assert(h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
      .. h.sh_quote(ctx.tenant_dir) .. "/ && mkdir -p " .. h.sh_quote(ctx.scripts .. "/api")
      .. " && cp " .. h.sh_quote(h.root .. "/scripts/api") .. "/*.lua "
      .. h.sh_quote(h.root .. "/spec/fixtures/scripts/api/misc.lua") .. " "
      .. h.sh_quote(ctx.scripts .. "/api") .. "/ && cp -r "
      .. h.sh_quote(h.root .. "/scripts/seeds") .. " " .. h.sh_quote(h.root .. "/scripts/lib")
      .. " " .. h.sh_quote(ctx.scripts) .. "/"))
    assert.equal(0, ctx:migrate("").code)
    for code, mode in pairs({ acme = "schema", beta = "shared", gamma = "database" }) do
      local res = ctx:tenant_cmd({ "create", code, "--isolation", mode })
      assert.equal(0, res.code, mig.explain(res))
      if mode == "database" then
        ctx.databases[#ctx.databases + 1] = "t_" .. code
      end
      ids[code] = tonumber(h.psql("SELECT id FROM core.tenants WHERE code = '" .. code
        .. "'", ctx.owner_url))
    end
    h.psql([[UPDATE core.tenants SET settings = '{"allow_registration": true}'
      WHERE code IN ('acme', 'beta', 'gamma')]], ctx.owner_url)
    srv = h.start({
      scripts = ctx.scripts,
      database_url = ctx.app_url,
      threads = 4,
      env = {
        RUNTIME_AUTH_JWT_SECRET = SECRET,
        RUNTIME_DATABASE_OWNER_URL = ctx.owner_url,
        RUNTIME_TENANCY_REFRESH_MS = "100",
        RUNTIME_AUTH_REVOCATION_REFRESH_MS = "100",
        RUNTIME_AUTH_LOCKOUT_ATTEMPTS = "3",
        RUNTIME_AUTH_LOCKOUT_S = "60",
        RUNTIME_AUTH_LEEWAY_S = "0",
      },
    })
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  describe("platform users", function()
    it("registers, logs in with JSON and with form fields, and answers /me", function()
      local r = json_req("POST", "/api/v1/auth/register",
        { email = "Ann@Example.com", password = PASSWORD, full_name = "Ann" })
      assert.equal(201, r.status, r.body)
      assert.equal("ann@example.com", r.json.email)
      assert.is_nil(r.body:find("password", 1, true))
      r = login("ann@example.com", PASSWORD)
      assert.equal(200, r.status, r.body)
      assert.equal("bearer", r.json.token_type)
      assert.equal("core", r.json.scope)
      assert.truthy(r.json.refresh_token:find("^rtr_"))
      local m = me(r.json.access_token)
      assert.equal(200, m.status)
      assert.equal("ann@example.com", m.json.email)
      assert.equal("core", m.json.scope)
      r = srv:request({ method = "POST", path = "/api/v1/auth/login",
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        body = "username=ann%40example.com&password=correct+horse+battery" })
      assert.equal(200, r.status, r.body)
    end)

    it("refuses duplicates (409), weak passwords and bad bodies (422 with fields)", function()
      json_req("POST", "/api/v1/auth/register", { email = "dup@example.com", password = PASSWORD })
      local r = json_req("POST", "/api/v1/auth/register",
        { email = "DUP@example.com", password = PASSWORD })
      assert.equal(409, r.status)
      r = json_req("POST", "/api/v1/auth/register", { email = "x@example.com", password = "short" })
      assert.equal(422, r.status)
      assert.truthy(r.json.fields.password)
      r = json_req("POST", "/api/v1/auth/register", { email = "not-an-email", extra = 1 })
      assert.equal(422, r.status)
      assert.equal("must be a valid email", r.json.fields.email)
      assert.equal("is required", r.json.fields.password)
      assert.equal("is not allowed", r.json.fields.extra)
      assert.truthy(r.json.request_id)
    end)

    it("gives one 401 body for a wrong password, an unknown and a disabled user", function()
      json_req("POST", "/api/v1/auth/register", { email = "off@example.com", password = PASSWORD })
      h.psql("UPDATE core.users SET status = 'inactive' WHERE email = 'off@example.com'",
        ctx.owner_url)
      local bodies = {}
      for _, try in ipairs({ { "ann@example.com", "wrong password!" },
        { "nobody@example.com", PASSWORD }, { "off@example.com", PASSWORD } }) do
        local r = login(try[1], try[2])
        assert.equal(401, r.status)
        r.json.request_id = nil
        bodies[#bodies + 1] = r.json
      end
      assert.same(bodies[1], bodies[2])
      assert.same(bodies[1], bodies[3])
    end)

    it("takes comparable time for an unknown user and a wrong password", function()
      local function median(user)
        local t = {}
        for i = 1, 5 do
          local t0 = tonumber((h.run("date +%s%N")))
          login(user, "not the password " .. i)
          t[i] = (tonumber((h.run("date +%s%N"))) - t0) / 1e6
        end
        table.sort(t)
        return t[3]
      end
      json_req("POST", "/api/v1/auth/register", { email = "tim@example.com", password = PASSWORD })
      local known, unknown = median("tim@example.com"), median("nobody-" .. os.time() .. "@x.io")
      -- both run one argon2id check (~20+ ms); no early exit for unknown users
      assert.is_true(unknown > known * 0.5 and unknown < known * 2,
        ("known %.1f ms, unknown %.1f ms"):format(known, unknown))
    end)

    it("locks an account after repeated failures, per account", function()
      json_req("POST", "/api/v1/auth/register", { email = "lock@example.com", password = PASSWORD })
      for _ = 1, 3 do
        assert.equal(401, login("lock@example.com", "wrong password!").status)
      end
      -- now even the right password is refused, with the same body
      assert.equal(401, login("lock@example.com", PASSWORD).status)
      -- other accounts are not affected
      assert.equal(200, login("ann@example.com", PASSWORD).status)
      h.psql("UPDATE core.users SET locked_until = now() - interval '1 second' "
        .. "WHERE email = 'lock@example.com'", ctx.owner_url)
      assert.equal(200, login("lock@example.com", PASSWORD).status)
    end)
  end)

  describe("sessions", function()
    it("rotates refresh tokens and revokes the family when a spent one is replayed", function()
      local s = login("ann@example.com", PASSWORD).json
      local r = json_req("POST", "/api/v1/auth/refresh", { refresh_token = s.refresh_token })
      assert.equal(200, r.status, r.body)
      local s2 = r.json
      assert.are_not.equal(s.refresh_token, s2.refresh_token)
      assert.equal(200, me(s2.access_token).status)
      -- replaying the spent token ends the whole login
      assert.equal(401, json_req("POST", "/api/v1/auth/refresh",
        { refresh_token = s.refresh_token }).status)
      assert.equal(401, json_req("POST", "/api/v1/auth/refresh",
        { refresh_token = s2.refresh_token }).status)
      assert.equal(401, me(s2.access_token).status)
      assert.equal(401, me(s.access_token).status)
      -- another login is unaffected
      local other = login("ann@example.com", PASSWORD).json
      assert.equal(200, me(other.access_token).status)
    end)

    it("logout revokes the token and its session", function()
      local s = login("ann@example.com", PASSWORD).json
      local r = json_req("POST", "/api/v1/auth/logout", { refresh_token = s.refresh_token },
        { Authorization = "Bearer " .. s.access_token })
      assert.equal(204, r.status, r.body)
      assert.equal(401, me(s.access_token).status)
      assert.equal(401, json_req("POST", "/api/v1/auth/refresh",
        { refresh_token = s.refresh_token }).status)
    end)

    it("logout-others ends every other session and keeps the caller's", function()
      json_req("POST", "/api/v1/auth/register", { email = "multi@example.com",
        password = PASSWORD })
      local a = login("multi@example.com", PASSWORD).json
      local b = login("multi@example.com", PASSWORD).json
      local c = login("multi@example.com", PASSWORD).json
      local c2 = json_req("POST", "/api/v1/auth/refresh", { refresh_token = c.refresh_token }).json
      -- a session's tokens carry its id; a refresh keeps it
      local function sid(token)
        return cjson.decode(jwt.b64url_decode(token:match("^[^.]+%.([^.]+)"))).sid
      end
      assert.truthy(sid(c.access_token))
      assert.equal(sid(c.access_token), sid(c2.access_token))
      assert.are_not.equal(sid(a.access_token), sid(c.access_token))
      local other = login("ann@example.com", PASSWORD).json -- someone else: untouched

      local r = json_req("POST", "/api/v1/auth/logout-others", nil, bearer(a.access_token))
      assert.equal(200, r.status, r.body)
      assert.equal(2, r.json.revoked_sessions)
      for i, t in ipairs({ b.access_token, c.access_token, c2.access_token }) do
        assert.equal(401, me(t).status, "token " .. i)
      end
      for _, t in ipairs({ b.refresh_token, c2.refresh_token }) do
        assert.equal(401, json_req("POST", "/api/v1/auth/refresh", { refresh_token = t }).status)
      end
      -- this session goes on, and so do new logins and other users
      assert.equal(200, me(a.access_token).status)
      r = json_req("POST", "/api/v1/auth/refresh", { refresh_token = a.refresh_token })
      assert.equal(200, r.status)
      assert.equal(200, me(r.json.access_token).status)
      assert.equal(200, me(login("multi@example.com", PASSWORD).json.access_token).status)
      assert.equal(200, me(other.access_token).status)
      -- again: nothing left to end but the new login
      r = json_req("POST", "/api/v1/auth/logout-others", nil, bearer(r.json.access_token))
      assert.equal(1, r.json.revoked_sessions)
    end)

    it("logout-others from a token of no session ends them all and keeps that token", function()
      local s = login("multi@example.com", PASSWORD).json
      local id = math.tointeger(me(s.access_token).json.id)
      local now = os.time()
      local t = forge({ iss = "runtime", aud = "runtime-api", sub = tostring(id), scope = "core",
        jti = "no-session-" .. now, iat = now, exp = now + 300 }, SECRET)
      local r = json_req("POST", "/api/v1/auth/logout-others", nil, bearer(t))
      assert.equal(200, r.status, r.body)
      assert.is_true(r.json.revoked_sessions >= 1)
      assert.equal(401, me(s.access_token).status)
      assert.equal(200, me(t).status)
    end)

    it("stores refresh tokens hashed", function()
      local s = login("ann@example.com", PASSWORD).json
      assert.equal("0", h.psql("SELECT count(*) FROM core.refresh_tokens WHERE token_hash = '"
        .. s.refresh_token .. "'", ctx.owner_url))
    end)
  end)

  describe("tenant users", function()
    for _, code in ipairs({ "acme", "beta", "gamma" }) do
      it("register and log in to " .. code .. " with X-Tenant-Id", function()
        local hdr = { ["X-Tenant-Id"] = code }
        local r = json_req("POST", "/api/v1/auth/register",
          { email = "bob@example.com", password = PASSWORD, username = "bob" }, hdr)
        assert.equal(201, r.status, r.body)
        assert.equal("bob", r.json.username)
        r = login("bob", PASSWORD, code)
        assert.equal(200, r.status, r.body)
        assert.equal("tenant", r.json.scope)
        assert.equal(code, r.json.tenant)
        local m = me(r.json.access_token)
        assert.equal(200, m.status)
        assert.equal(code, m.json.tenant)
        assert.equal("bob", m.json.username)
      end)
    end

    it("refuses self-registration where the tenant does not allow it (403)", function()
      h.psql("UPDATE core.tenants SET settings = '{}', updated_at = now() WHERE code = 'beta'",
        ctx.owner_url)
      h.sleep(0.4)
      local r = json_req("POST", "/api/v1/auth/register",
        { email = "eve@example.com", password = PASSWORD }, { ["X-Tenant-Id"] = "beta" })
      assert.equal(403, r.status)
      assert.equal("registration_closed", r.json.error)
    end)

    it("binds tokens to their scope and tenant", function()
      local t = login("bob", PASSWORD, "acme").json.access_token
      local c = login("ann@example.com", PASSWORD).json.access_token
      -- tenant token on a core route, core token on a tenant route
      assert.equal(403, srv:request({ path = "/api/v1/api-keys", headers = bearer(t) }).status)
      assert.equal(403, srv:request({ path = "/private",
        headers = bearer(c, { ["X-Tenant-Id"] = "acme" }) }).status)
      -- a tenant token with another tenant
      assert.equal(403, me(t, { ["X-Tenant-Id"] = "gamma" }).status)
      assert.equal(200, me(t, { ["X-Tenant-Id"] = "acme" }).status)
    end)

    it("stops a suspended tenant's tokens within seconds", function()
      local t = login("bob", PASSWORD, "gamma").json.access_token
      assert.equal(200, me(t).status)
      h.psql("UPDATE core.tenants SET status = 'suspended', updated_at = now() "
        .. "WHERE code = 'gamma'", ctx.owner_url)
      h.sleep(0.4)
      assert.equal(403, me(t).status)
      h.psql("UPDATE core.tenants SET status = 'active', updated_at = now() "
        .. "WHERE code = 'gamma'", ctx.owner_url)
    end)
  end)

  describe("forged and broken tokens", function()
    it("answers 401 for a wrong key, an expired token, missing claims and alg none", function()
      local now = os.time()
      local good = { iss = "runtime", aud = "runtime-api", sub = "1", scope = "core",
        jti = "abc", iat = now, exp = now + 300 }
      local function with(changes)
        local c = {}
        for k, v in pairs(good) do
          c[k] = v
        end
        for k, v in pairs(changes) do
          c[k] = v ~= false and v or nil
        end
        return c
      end
      assert.equal(200, me(forge(good, SECRET)).status) -- the forger itself works
      local bad = {
        forge(good, "another-secret-0123456789abcdef0123"),
        forge(with({ exp = now - 3600, iat = now - 7200 }), SECRET),
        forge(with({ exp = false }), SECRET),
        forge(with({ jti = false }), SECRET),
        forge(with({ aud = "someone-else" }), SECRET),
        forge(with({ iss = "someone-else" }), SECRET),
        forge(with({ scope = "root" }), SECRET),
        forge(good, SECRET, "HS512"),
        jwt.b64url('{"alg":"none","typ":"JWT"}') .. "." .. jwt.b64url(cjson.encode(good))
          .. ".",
      }
      for i, token in ipairs(bad) do
        local r = me(token)
        assert.equal(401, r.status, "token " .. i)
        assert.equal("invalid or expired token", r.json.message)
      end
    end)

    it("refuses a token it accepted before once the token expires", function()
      local now = os.time()
      local token = forge({ iss = "runtime", aud = "runtime-api", sub = "1", scope = "core",
        jti = "short-lived", iat = now, exp = now + 1 }, SECRET)
      -- the second use is answered from the verified-token cache
      assert.equal(200, me(token).status)
      assert.equal(200, me(token).status)
      while os.time() <= now + 1 do
        h.sleep(0.2)
      end
      local r = me(token)
      assert.equal(401, r.status)
      assert.equal("invalid or expired token", r.json.message)
    end)
  end)

  describe("platform administration", function()
    local admin

    setup(function()
      local out = h.run("printf '%s\\n' " .. h.sh_quote(PASSWORD) .. " | env RUNTIME_DATABASE_URL="
        .. h.sh_quote(ctx.app_url) .. " RUNTIME_DATABASE_OWNER_URL=" .. h.sh_quote(ctx.owner_url)
        .. " " .. h.sh_quote(h.bin) .. " user create root@example.com --superuser 2>&1")
      assert.truthy(out:find("created", 1, true), out)
      admin = login("root@example.com", PASSWORD).json.access_token
    end)

    it("refuses a password on the command line's standard input that is too short", function()
      local out = h.run("echo short | env RUNTIME_DATABASE_URL=" .. h.sh_quote(ctx.app_url)
        .. " " .. h.sh_quote(h.bin) .. " user create x@example.com 2>&1; echo exit=$?")
      assert.truthy(out:find("exit=2", 1, true), out)
    end)

    it("lets superusers, and nobody else, manage API keys; keys are shown once", function()
      local plain = login("ann@example.com", PASSWORD).json.access_token
      assert.equal(401, srv:request({ path = "/api/v1/api-keys" }).status)
      assert.equal(403, srv:request({ path = "/api/v1/api-keys", headers = bearer(plain) }).status)
      local r = json_req("POST", "/api/v1/api-keys", { name = "ci" }, bearer(admin))
      assert.equal(201, r.status, r.body)
      local key, id = r.json.key, r.json.id
      assert.truthy(key:find("^rtk_"))
      -- the key works as a platform principal
      local list = srv:request({ path = "/api/v1/api-keys", headers = bearer(key) })
      assert.equal(200, list.status)
      assert.is_nil(list.body:find(key, 1, true))
      assert.equal("0", h.psql("SELECT count(*) FROM core.api_keys WHERE key_hash = '" .. key
        .. "' OR prefix = '" .. key .. "'", ctx.owner_url))
      -- revoked: 401 at once
      assert.equal(204, srv:request({ method = "DELETE", path = "/api/v1/api-keys/" .. id,
        headers = bearer(admin) }).status)
      assert.equal(401, srv:request({ path = "/api/v1/api-keys", headers = bearer(key) }).status)
      assert.equal(401, srv:request({ path = "/api/v1/api-keys",
        headers = bearer("rtk_0000_0000") }).status)
    end)

    it("drops a platform user's permission when the superuser flag goes", function()
      h.psql("UPDATE core.users SET is_superuser = false WHERE email = 'root@example.com'",
        ctx.owner_url)
      -- cached for this user until the cache is dropped or expires
      assert.equal(200, srv:request({ path = "/api/v1/api-keys", headers = bearer(admin) }).status)
      h.psql("INSERT INTO core.revocations (kind, tenant_id, user_id, expires_at) SELECT "
        .. "'rbac', 0, id::text, now() + interval '10 seconds' FROM core.users "
        .. "WHERE email = 'root@example.com'", ctx.owner_url)
      h.sleep(0.4)
      assert.equal(403, srv:request({ path = "/api/v1/api-keys", headers = bearer(admin) }).status)
    end)
  end)

  describe("client mistakes are 4xx, never 500", function()
    it("answers 401 for a signed token whose sub is not a user id", function()
      local now = os.time()
      for i, sub in ipairs({ "abc", "1e3", "99999999999999999999", "-1", "apikey:1" }) do
        for _, scope in ipairs({ "core", "tenant" }) do
          local t = forge({ iss = "runtime", aud = "runtime-api", sub = sub, scope = scope,
            tid = scope == "tenant" and ids.acme or nil, jti = "sub-" .. i .. scope,
            iat = now, exp = now + 300 }, SECRET)
          local r = me(t)
          assert.equal(401, r.status, sub .. " (" .. scope .. "): " .. r.body)
          assert.equal("unauthenticated", r.json.error)
        end
      end
      -- "apikey:1" in a token is not a platform API key
      local t = forge({ iss = "runtime", aud = "runtime-api", sub = "apikey:1", scope = "core",
        jti = "sub-apikey-admin", iat = now, exp = now + 300 }, SECRET)
      assert.equal(401, srv:request({ path = "/api/v1/api-keys", headers = bearer(t) }).status)
    end)

    it("refuses \\u0000 in a login body with 400, JSON or form fields", function()
      for _, tenant in ipairs({ false, "acme" }) do
        local hdr = { ["Content-Type"] = "application/json" }
        hdr["X-Tenant-Id"] = tenant or nil
        local r = srv:request({ method = "POST", path = "/api/v1/auth/login", headers = hdr,
          body = '{"username": "a\\u0000b", "password": "x"}' })
        assert.equal(400, r.status, r.body)
        assert.equal("invalid_json", r.json.error)
        assert.truthy(r.json.message:find("NUL", 1, true), r.json.message)
      end
      local r = srv:request({ method = "POST", path = "/api/v1/auth/login",
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        body = "username=a%00b&password=x" })
      assert.equal(400, r.status, r.body)
      assert.truthy(r.json.message:find("NUL", 1, true), r.json.message)
    end)

    it("answers /me for a platform token that names a tenant with a 400, in every mode", function()
      local c = login("ann@example.com", PASSWORD).json.access_token
      assert.equal(200, me(c).status)
      for _, code in ipairs({ "gamma", "acme", "beta" }) do
        local r = me(c, { ["X-Tenant-Id"] = code })
        assert.equal(400, r.status, code .. ": " .. r.body)
        assert.equal("tenant_not_applicable", r.json.error)
      end
    end)
  end)

  -- Last: it takes the spec's database away.
  describe("database down", function()
    local session, fresh

    setup(function()
      session = login("ann@example.com", PASSWORD).json
      json_req("POST", "/api/v1/auth/register", { email = "down@example.com", password = PASSWORD })
      fresh = login("down@example.com", PASSWORD).json
      h.psql("ALTER DATABASE " .. ctx.dbname .. " ALLOW_CONNECTIONS false", h.admin_url)
      h.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"
        .. ctx.dbname .. "'", h.admin_url)
      h.sleep(0.2)
    end)

    teardown(function()
      h.psql("ALTER DATABASE " .. ctx.dbname .. " ALLOW_CONNECTIONS true", h.admin_url)
    end)

    local function unavailable(r)
      assert.equal(503, r.status, r.body)
      assert.truthy(r.headers["retry-after"], "no Retry-After")
      assert.equal("unavailable", r.json.error)
    end

    it("answers 503 with Retry-After on refresh", function()
      unavailable(json_req("POST", "/api/v1/auth/refresh",
        { refresh_token = session.refresh_token }))
    end)

    it("answers 503 with Retry-After on logout", function()
      unavailable(json_req("POST", "/api/v1/auth/logout", nil, bearer(session.access_token)))
    end)

    it("answers 503 with Retry-After on a platform route whose permissions are not cached",
      function()
        unavailable(srv:request({ path = "/api/v1/api-keys",
          headers = bearer(fresh.access_token) }))
      end)
  end)
end)

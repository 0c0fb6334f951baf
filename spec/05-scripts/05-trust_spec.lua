-- Trust and isolation of tenant override scripts (docs/SCRIPTS.md): code in
-- a tenant's override environment issues tokens and sessions only for its
-- own tenant's active users, never core ones; and a chunk that load()
-- compiles runs in its caller's environment, so one tenant's globals never
-- reach another's.
local h = require "helpers"
local mig = require "helpers.migrate"
local cjson = require "cjson"

local SECRET = "trust-spec-secret-0123456789abcdef0123456789"
local PASSWORD = "Correct-Horse-Battery-9"

-- The attacker: acme's override calls rt.auth.<fn>(args...) and reports
-- whether it raised.
local ATTACK = [[
local auth = require "rt.auth"
local json = require "rt.json"

local rt = require "rt"
local tenant = require "rt.tenant"

local platform = {
  scripts_status = function() return rt.scripts_status() end,
  set_status = function() return tenant.set_status("globex", "suspended") end,
}

return {
  ["/platform/:fn"] = { POST = { scope = "public", handler = function(req)
    local ok, err = pcall(platform[req.params.fn])
    return { json = { raised = not ok, message = tostring(err) } }
  end } },
  ["/attack/:fn"] = { POST = { scope = "public", handler = function(req)
    local body = req.json()
    local args = body.args or {}
    local ok, r1, r2 = pcall(auth[req.params.fn], table.unpack(args, 1, body.n or #args))
    if not ok then
      return { json = { raised = true, message = tostring(r1) } }
    end
    return { json = { raised = false, r1 = r1 == nil and json.null or r1,
      r2 = r2 == nil and json.null or r2 } }
  end } },
}
]]

-- acme's override sets globals through every form of load().
local LEAK_SET = [[
local json = require "rt.json"

return {
  ["/leak/set"] = { POST = { scope = "public", handler = function()
    load("leaked_plain = 'acme'")()
    load("leaked_mode = 'acme'", "=chunk", "t")()
    local parts = { "leaked_reader ", "= 'acme'" }
    load(function() return table.remove(parts, 1) end)()
    return { json = { own = { load("return leaked_plain, leaked_mode, leaked_reader")() } } }
  end } },
}
]]

-- Common code any tenant runs: what it sees of those globals.
local LEAK_GET = [[
local names = { "leaked_plain", "leaked_mode", "leaked_reader" }

return {
  ["/leak/get"] = { GET = { scope = "public", handler = function()
    local seen = {}
    for _, name in ipairs(names) do
      seen[#seen + 1] = rawget(_G, name)
      seen[#seen + 1] = load("return rawget(_G, ...)")(name)
      seen[#seen + 1] = load("return rawget(_G, ...)", "=c", "t")(name)
    end
    return { json = { seen = seen, n = #seen } }
  end } },
  -- Every table reachable from the built-ins, the string metatable and the
  -- rt modules: which ones took a new field.
  ["/leak/shared"] = { POST = { scope = "public", handler = function()
    local seen, accepted = {}, {}
    local function try(t, path, depth)
      if type(t) ~= "table" or seen[t] or depth > 3 then
        return
      end
      seen[t] = true
      if pcall(function() t.leaked_field = "x" end) then
        accepted[#accepted + 1] = path
      end
      if pcall(rawset, t, "leaked_raw", "x") then
        accepted[#accepted + 1] = path .. " (rawset)"
      end
      for k, v in pairs(t) do
        try(v, path .. "." .. tostring(k), depth + 1)
      end
    end
    for _, name in ipairs({ "string", "table", "math", "utf8", "coroutine", "os" }) do
      try(_G[name], name, 1)
    end
    for _, name in ipairs({ "rt", "rt.db", "rt.json", "rt.log", "rt.auth", "rt.tenant",
      "rt.events" }) do
      try(require(name), name, 1)
    end
    try(getmetatable(""), "string metatable", 1)
    return { json = { accepted = accepted, n = #accepted } }
  end } },
}
]]

describe("tenant override trust", function()
  local ctx, srv, ids = nil, nil, {}

  local function write(rel, text)
    h.run("mkdir -p " .. h.sh_quote((ctx.scripts .. "/" .. rel):match("^(.*)/")))
    h.write_all(ctx.scripts .. "/" .. rel, text)
  end

  local function call(method, path, tenant, body, token)
    local hs = { ["Content-Type"] = "application/json" }
    if tenant then
      hs["X-Tenant-Id"] = tenant
    end
    if token then
      hs.Authorization = "Bearer " .. token
    end
    return srv:request({ method = method, path = path, headers = hs,
      body = body and cjson.encode(body) or nil })
  end

  -- rt.auth.<fn>(...) from acme's override.
  local function attack(fn, ...)
    local r = call("POST", "/attack/" .. fn, "acme",
      { args = { ... }, n = select("#", ...) })
    assert.equal(200, r.status, r.body)
    return r.json
  end

  local function refused(fn, ...)
    local res = attack(fn, ...)
    assert.is_true(res.raised, fn .. " was not refused: " .. cjson.encode(res))
    return res.message
  end

  local function login(email, tenant)
    local r = call("POST", "/api/v1/auth/login", tenant,
      { username = email, password = PASSWORD })
    assert.equal(200, r.status, r.body)
    return r.json
  end

  setup(function()
    ctx = mig.new("script_trust")
    local _, ok = h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
      .. h.sh_quote(ctx.tenant_dir) .. "/ && mkdir -p " .. h.sh_quote(ctx.scripts .. "/api")
      .. " && cp " .. h.sh_quote(h.root .. "/scripts/api/auth.lua") .. " "
      .. h.sh_quote(h.root .. "/scripts/api/admin.lua") .. " "
      .. h.sh_quote(ctx.scripts .. "/api/"))
    assert(ok, "cannot build the scripts directory")
    local res = ctx:migrate("")
    assert(res.code == 0, mig.explain(res))
    for _, code in ipairs({ "acme", "globex" }) do
      res = ctx:tenant_cmd({ "create", code, "--isolation", "schema" })
      assert(res.code == 0, mig.explain(res))
      ids[code] = tonumber(ctx:tenant(code).id)
    end
    write("tenants/acme/api/attack.lua", ATTACK)
    write("tenants/acme/api/leak_set.lua", LEAK_SET)
    write("api/leak.lua", LEAK_GET)
    -- One worker: every tenant's environment lives in the same Lua state.
    srv = h.start({
      scripts = ctx.scripts, database_url = ctx.app_url, threads = 1,
      env = { RUNTIME_AUTH_JWT_SECRET = SECRET, RUNTIME_TENANCY_REFRESH_MS = "100" },
    })
    local r = call("POST", "/api/v1/auth/register", nil,
      { email = "root@trust.test", password = PASSWORD })
    assert.equal(201, r.status, r.body)
    ctx:sql("UPDATE core.users SET is_superuser = true WHERE email = 'root@trust.test'")
    ids.root = ctx:sql("SELECT id FROM core.users WHERE email = 'root@trust.test'")
    -- Tenant users share root's password hash.
    local function user(code, name, status, deleted)
      local schema = ctx:tenant(code).schema_name
      return ctx:sql(("SET app.tenant_id = '%d'; INSERT INTO %s.users (tenant_id, username, "
        .. "email, password_hash, status, deleted_at) SELECT %d, '%s', '%s@%s.test', "
        .. "password_hash, '%s', %s FROM core.users WHERE email = 'root@trust.test' "
        .. "RETURNING id"):format(ids[code], schema, ids[code], name, name, code, status,
        deleted and "now()" or "NULL"))
    end
    ids.alice = user("acme", "alice", "active")
    ids.bob = user("acme", "bob", "inactive")
    ids.carol = user("acme", "carol", "active", true)
    ids.gina = user("globex", "gina", "active")
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  describe("rt.auth from a tenant's override", function()
    it("refuses core-scope tokens and sessions", function()
      assert.matches("core", refused("issue_token", { scope = "core", sub = ids.root }))
      refused("login", { scope = "core", sub = ids.root })
    end)

    it("refuses tokens and sessions for another tenant", function()
      refused("issue_token", { scope = "tenant", tid = ids.globex, sub = ids.gina })
      refused("login", { scope = "tenant", tid = ids.globex, sub = ids.gina })
      refused("issue_token", { scope = "tenant", tid = 0, sub = ids.alice })
      refused("issue_token", { scope = "tenant", sub = ids.alice })
    end)

    it("refuses tokens for users that are not active users of its tenant", function()
      for _, sub in ipairs({ "999999", ids.bob, ids.carol, "1 OR true", "apikey:1", "-1" }) do
        refused("issue_token", { scope = "tenant", tid = ids.acme, sub = sub })
        refused("login", { scope = "tenant", tid = ids.acme, sub = sub })
      end
    end)

    it("refuses platform API keys, the tenant lifecycle and the scripts status", function()
      refused("create_api_key", "from acme")
      refused("revoke_api_key", 1)
      for _, fn in ipairs({ "scripts_status", "set_status" }) do
        local r = call("POST", "/platform/" .. fn, "acme")
        assert.equal(200, r.status, r.body)
        assert.is_true(r.json.raised, fn .. " was not refused")
        assert.matches("override scripts", r.json.message, 1, true)
      end
    end)

    it("cannot refresh another tenant's session", function()
      local gina = login("gina@globex.test", "globex")
      local res = attack("refresh", gina.refresh_token)
      assert.is_false(res.raised)
      assert.equal(cjson.null, res.r1)
      -- Not spent either: its owner refreshes it as usual.
      local r = call("POST", "/api/v1/auth/refresh", "globex",
        { refresh_token = gina.refresh_token })
      assert.equal(200, r.status, r.body)
    end)

    it("issues tokens and sessions for its own active users", function()
      local res = attack("issue_token", { scope = "tenant", tid = ids.acme, sub = ids.alice })
      assert.is_false(res.raised, res.message)
      local me = call("GET", "/api/v1/auth/me", "acme", nil, res.r1)
      assert.equal(200, me.status, me.body)
      assert.equal("alice", me.json.username)
      res = attack("login", { scope = "tenant", tid = ids.acme, sub = ids.alice })
      assert.is_false(res.raised, res.message)
      assert.is_string(res.r1.refresh_token)
      -- A user id given as a number is the same user.
      res = attack("issue_token", { scope = "tenant", tid = ids.acme,
        sub = tonumber(ids.alice) })
      assert.is_false(res.raised, res.message)
    end)

    it("keeps the operator's login and refresh routes working", function()
      for _, who in ipairs({ { "alice@acme.test", "acme" }, { "gina@globex.test", "globex" },
        { "root@trust.test" } }) do
        local s = login(who[1], who[2])
        local r = call("GET", "/api/v1/auth/me", who[2], nil, s.access_token)
        assert.equal(200, r.status, r.body)
        r = call("POST", "/api/v1/auth/refresh", who[2], { refresh_token = s.refresh_token })
        assert.equal(200, r.status, r.body)
      end
      -- A platform admin's token still opens platform routes.
      local r = call("GET", "/api/v1/admin/scripts", nil, nil,
        login("root@trust.test").access_token)
      assert.equal(200, r.status, r.body)
    end)
  end)

  describe("load()", function()
    it("runs a chunk in its caller's environment, never in another tenant's", function()
      local r = call("POST", "/leak/set", "acme")
      assert.equal(200, r.status, r.body)
      -- The chunks' globals are acme's own.
      assert.same({ "acme", "acme", "acme" }, r.json.own)
      for _, tenant in ipairs({ "globex", false }) do
        r = call("GET", "/leak/get", tenant or nil)
        assert.equal(200, r.status, r.body)
        assert.equal(0, r.json.n, (tenant or "no tenant") .. " sees " .. r.body)
      end
      r = call("GET", "/leak/get", "acme")
      assert.equal(9, r.json.n, r.body)
    end)

    it("leaves no shared table writable", function()
      local r = call("POST", "/leak/shared", "acme")
      assert.equal(200, r.status, r.body)
      assert.equal(0, r.json.n, r.body)
    end)
  end)
end)

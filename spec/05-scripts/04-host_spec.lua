-- The script host (docs/SCRIPTS.md): scripts reload while the server serves,
-- a broken change keeps the previous version serving and shows in the admin
-- view, each tenant runs in an environment of its own (evicted least recently
-- used), tenant override folders shadow and add routes and event handlers
-- for their tenant only, and rt.events runs handlers in the emitter's tenant.
local h = require "helpers"
local mig = require "helpers.migrate"
local cjson = require "cjson"

local SECRET = "host-spec-secret-0123456789abcdef0123456789"
local PASSWORD = "Correct-Horse-Battery-9"

local function route(path, method, scope, body)
  return ("return { [%q] = { %s = { scope = %q, handler = function(req)\n%s\nend } } }\n")
    :format(path, method, scope, body)
end

local function version_file(v)
  return route("/v", "GET", "public", ("return { json = { version = %q } }"):format(v))
end

-- Polls fn until it returns true (at most `seconds`); returns whether it did.
local function eventually(fn, seconds)
  for _ = 1, (seconds or 5) * 20 do
    if fn() then
      return true
    end
    h.sleep(0.05)
  end
  return false
end

describe("script host", function()
  local ctx, srv, dir, token

  local function write(rel, text)
    h.run("mkdir -p " .. h.sh_quote((dir .. "/" .. rel):match("^(.*)/")))
    -- Written in place, as an editor saving over the file would.
    h.write_all(dir .. "/" .. rel, text)
  end

  local function remove(rel)
    os.remove(dir .. "/" .. rel)
  end

  local function get(path, tenant)
    return srv:request({ path = path, headers = tenant and { ["X-Tenant-Id"] = tenant } })
  end

  local function post(path, tenant)
    return srv:request({ method = "POST", path = path,
      headers = tenant and { ["X-Tenant-Id"] = tenant } })
  end

  local function version()
    local r = get("/v")
    return r.status == 200 and r.json.version or r.status
  end

  local function status()
    local r = srv:request({ path = "/api/v1/admin/scripts",
      headers = { Authorization = "Bearer " .. token } })
    assert.equal(200, r.status, r.body)
    return r.json
  end

  local function start(extra)
    if srv then
      srv:stop()
    end
    srv = h.start({
      scripts = dir, database_url = ctx.app_url, threads = 1,
      extra = extra,
      env = { RUNTIME_AUTH_JWT_SECRET = SECRET, RUNTIME_TENANCY_REFRESH_MS = "100" },
    })
  end

  setup(function()
    ctx = mig.new("script_host")
    dir = ctx.scripts
    local _, ok = h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
      .. h.sh_quote(ctx.tenant_dir) .. "/ && mkdir -p " .. h.sh_quote(dir .. "/api")
      .. " && cp " .. h.sh_quote(h.root .. "/scripts/api/auth.lua") .. " "
      .. h.sh_quote(h.root .. "/scripts/api/admin.lua") .. " " .. h.sh_quote(dir .. "/api/"))
    assert(ok, "cannot build the scripts directory")
    local res = ctx:migrate("")
    assert(res.code == 0, mig.explain(res))
    for _, code in ipairs({ "acme", "globex", "initech" }) do
      res = ctx:tenant_cmd({ "create", code, "--isolation", "schema" })
      assert(res.code == 0, mig.explain(res))
    end
    write("api/version.lua", version_file("1"))
    start()
    local email = "root@host.test"
    local r = srv:request({ method = "POST", path = "/api/v1/auth/register",
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ email = email, password = PASSWORD }) })
    assert.equal(201, r.status, r.body)
    ctx:sql("UPDATE core.users SET is_superuser = true WHERE email = '" .. email .. "'")
    r = srv:request({ method = "POST", path = "/api/v1/auth/login",
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ username = email, password = PASSWORD }) })
    assert.equal(200, r.status, r.body)
    token = r.json.access_token
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  describe("hot reload", function()
    it("serves a changed, a new and a deleted file without a restart", function()
      assert.equal("1", version())
      write("api/version.lua", version_file("2"))
      assert.is_true(eventually(function() return version() == "2" end))

      assert.equal(404, get("/new").status)
      write("api/new.lua", route("/new", "GET", "public", "return { json = { new = true } }"))
      assert.is_true(eventually(function() return get("/new").status == 200 end))
      remove("api/new.lua")
      assert.is_true(eventually(function() return get("/new").status == 404 end))
    end)

    it("keeps the previous version when a file does not compile, and shows why", function()
      local before = status()
      write("api/version.lua", version_file("3"))
      assert.is_true(eventually(function() return version() == "3" end))
      write("api/version.lua", "return { ['/v'] = { GET = function(req)\n  return {\nend } }\n")
      assert.is_true(eventually(function()
        local s = status()
        return s.last_error ~= nil and s.failures > before.failures
      end))
      local s = status()
      assert.matches("api/version.lua:3:", s.last_error.message, 1, true)
      assert.equal("3", version()) -- still the previous version
      assert.matches("reload failed; the previous version keeps serving", srv:logs(), 1, true)

      write("api/version.lua", version_file("4"))
      assert.is_true(eventually(function() return version() == "4" end))
      s = status()
      assert.is_nil(s.last_error)
      assert.is_true(s.generation > before.generation)
    end)

    it("keeps the previous version when a route table is invalid", function()
      write("api/version.lua", version_file("5"))
      assert.is_true(eventually(function() return version() == "5" end))
      local before = status().failures
      write("api/version.lua",
        "return { ['/v'] = { FETCH = function() return { json = {} } end } }\n")
      assert.is_true(eventually(function() return status().failures > before end))
      assert.matches("unknown method", status().last_error.message, 1, true)
      -- two files declaring one route: the set is refused whole
      write("api/version.lua", version_file("6"))
      write("api/clash.lua", version_file("clash"))
      assert.is_true(eventually(function() return status().failures > before + 1 end))
      remove("api/clash.lua")
      assert.is_true(eventually(function() return version() == "6" end))
    end)

    it("answers every request while files change 100 times under load", function()
      write("api/version.lua", version_file("0"))
      assert.is_true(eventually(function() return version() == "0" end))
      local out = os.tmpname()
      -- wrk keeps 4 connections busy for the whole run, in the background.
      local pid = tonumber((h.run(("wrk -t 2 -c 4 -d 8s http://127.0.0.1:%d/v >%s 2>&1 & echo $!")
        :format(srv.port, h.sh_quote(out)))))
      h.sleep(0.5)
      for i = 1, 100 do
        write("api/version.lua", version_file(tostring(i)))
        h.sleep(0.04)
      end
      h.run("while kill -0 " .. pid .. " 2>/dev/null; do sleep 0.1; done")
      local report = h.read_all(out) or ""
      os.remove(out)
      assert.matches("requests in", report, 1, true)
      assert.not_matches("Non%-2xx", report)
      assert.not_matches("Socket errors", report)
      assert.is_true(eventually(function() return version() == "100" end))
      assert.is_true(status().generation > 20, "reloads happened during the run")
    end)
  end)

  describe("tenant environments", function()
    setup(function()
      write("api/globals.lua", [[
local counter = require "lib.counter"
local hits = 0 -- module-level state: one per tenant environment
return {
  ["/g/:v"] = { POST = { scope = "public", handler = function(req)
    shared_value = req.params.v -- a global of this tenant's environment
    hits = hits + 1
    return { json = { hits = hits, module = counter.inc() } }
  end } },
  ["/g"] = { GET = { scope = "public", handler = function(req)
    return { json = { value = rawget(_G, "shared_value") or "none", hits = hits,
      tenant = req.tenant and req.tenant.code or "none" } }
  end } },
}
]])
      write("lib/counter.lua", "local n = 0\nreturn { inc = function() n = n + 1 return n end }\n")
      start("scripts = { dir = '" .. dir .. "', tenant_envs = 2 }")
    end)

    it("keeps globals, module state and required modules of one tenant from another", function()
      assert.equal(200, post("/g/a1", "acme").status)
      local r = post("/g/a2", "acme")
      assert.same({ hits = 2, module = 2 }, r.json)
      r = get("/g", "globex")
      assert.same({ value = "none", hits = 0, tenant = "globex" }, r.json)
      r = post("/g/g1", "globex")
      assert.same({ hits = 1, module = 1 }, r.json)
      assert.same({ value = "a2", hits = 2, tenant = "acme" }, get("/g", "acme").json)
      assert.same({ value = "g1", hits = 1, tenant = "globex" }, get("/g", "globex").json)
      -- requests without a tenant have an environment of their own too
      assert.same({ value = "none", hits = 0, tenant = "none" }, get("/g").json)
    end)

    it("drops the least recently used environment past scripts.tenant_envs", function()
      post("/g/x", "acme")
      post("/g/y", "globex")
      post("/g/z", "initech") -- a third environment: acme's is the oldest
      assert.same({ value = "none", hits = 0, tenant = "acme" }, get("/g", "acme").json)
      assert.equal("none", get("/g", "globex").json.value) -- evicted by acme's return
      local envs = status().environments
      assert.equal(2, envs.limit)
      assert.is_true(envs.alive <= 2)
    end)
  end)

  describe("tenant overrides", function()
    setup(function()
      write("api/version.lua", version_file("common"))
      write("tenants/acme/api/version.lua", version_file("acme's own"))
      write("tenants/acme/api/extra.lua",
        route("/extra", "GET", "public", "return { json = { extra = req.tenant.code } }"))
      start()
    end)

    it("shadows and adds routes for its tenant only", function()
      assert.equal("acme's own", get("/v", "acme").json.version)
      assert.equal("common", get("/v", "globex").json.version)
      assert.equal("common", get("/v").json.version)
      assert.same({ extra = "acme" }, get("/extra", "acme").json)
      assert.equal(404, get("/extra", "globex").status)
    end)

    it("reloads an override like any other file", function()
      write("tenants/acme/api/version.lua", version_file("acme v2"))
      assert.is_true(eventually(function() return get("/v", "acme").json.version == "acme v2" end))
      assert.equal("common", get("/v", "globex").json.version)
      assert.same({ "acme" }, status().overrides)
      remove("tenants/acme/api/version.lua")
      assert.is_true(eventually(function() return get("/v", "acme").json.version == "common" end))
    end)

    it("refuses a folder that is not named by a tenant code", function()
      local out = h.run_bin("check --scripts " .. h.sh_quote(dir))
      assert.matches("exit=0", out, 1, true)
      h.run("mkdir -p " .. h.sh_quote(dir .. "/tenants/Not-A-Code/api"))
      out = h.run_bin("check --scripts " .. h.sh_quote(dir))
      h.run("rm -rf " .. h.sh_quote(dir .. "/tenants/Not-A-Code"))
      assert.matches("not a tenant code", out, 1, true)
      assert.matches("exit=1", out, 1, true)
    end)

    it("lists each tenant's routes in runtime routes", function()
      local out = h.run_bin("routes --json --scripts " .. h.sh_quote(dir))
      local doc = cjson.decode(out:match("^(.-)exit="))
      local function has(list, path, file)
        for _, r in ipairs(list) do
          if r.path == path and r.file == file then
            return true
          end
        end
        return false
      end
      assert.is_true(has(doc.routes, "/v", "api/version.lua"))
      assert.is_false(has(doc.routes, "/extra", "tenants/acme/api/extra.lua"))
      assert.is_true(has(doc.tenants.acme, "/extra", "tenants/acme/api/extra.lua"))
    end)
  end)

  describe("events", function()
    setup(function()
      write("api/emit.lua", route("/emit", "POST", "public", [[
  local events = require "rt.events"
  local payload = { seen = {} }
  local n = events.emit("thing.done", payload)
  return { json = { n = n, seen = payload.seen } }]]))
      write("events/things.lua", [[
return {
  ["thing.done"] = {
    function(p, event)
      p.seen[#p.seen + 1] = "first:" .. event.name .. ":"
        .. (event.tenant and event.tenant.code or "-")
    end,
    function(p) count = (rawget(_G, "count") or 0) + 1; p.seen[#p.seen + 1] = "count:" .. count end,
  },
}
]])
      write("tenants/globex/events/extra.lua", [[
return { ["thing.done"] = function(p) p.seen[#p.seen + 1] = "globex only" end }
]])
      start()
    end)

    it("runs the handlers in the emitter's tenant environment", function()
      assert.same({ n = 2, seen = { "first:thing.done:acme", "count:1" } },
        post("/emit", "acme").json)
      assert.same({ n = 2, seen = { "first:thing.done:acme", "count:2" } },
        post("/emit", "acme").json)
      assert.same({ n = 2, seen = { "first:thing.done:initech", "count:1" } },
        post("/emit", "initech").json)
      assert.same({ n = 2, seen = { "first:thing.done:-", "count:1" } }, post("/emit").json)
    end)

    it("adds a tenant's own handlers from its override folder", function()
      assert.same({ n = 3, seen = { "globex only", "first:thing.done:globex", "count:1" } },
        post("/emit", "globex").json)
    end)

    it("refuses an events file that is not a handler table", function()
      local before = status().failures
      write("events/bad.lua", "return { ['Thing Done'] = function() end }\n")
      assert.is_true(eventually(function() return status().failures > before end))
      assert.matches("must be dotted lower%-case words", status().last_error.message)
      remove("events/bad.lua")
      assert.is_true(eventually(function() return status().last_error == nil end))
    end)
  end)

  describe("rt.auth after commit", function()
    setup(function()
      write("api/revoke.lua", [[
local auth = require "rt.auth"
return { ["/revoke/:mode"] = { POST = { scope = "core", handler = function(req)
  auth.revoke_user(req.user.id)
  if req.params.mode == "fail" then return nil, "rolled back on purpose" end
  return { status = 204 }
end } } }
]])
      start()
    end)

    it("ends sessions only when the request commits", function()
      local email = "victim@host.test"
      local r = srv:request({ method = "POST", path = "/api/v1/auth/register",
        headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode({ email = email, password = PASSWORD }) })
      assert.equal(201, r.status, r.body)
      r = srv:request({ method = "POST", path = "/api/v1/auth/login",
        headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode({ username = email, password = PASSWORD }) })
      local victim = { Authorization = "Bearer " .. r.json.access_token }
      h.sleep(1.1) -- a cut-off refuses tokens issued in its own second

      r = srv:request({ method = "POST", path = "/revoke/fail", headers = victim })
      assert.equal(500, r.status, r.body)
      assert.equal(200, srv:request({ path = "/api/v1/auth/me", headers = victim }).status)

      r = srv:request({ method = "POST", path = "/revoke/ok", headers = victim })
      assert.equal(204, r.status, r.body)
      assert.equal(401, srv:request({ path = "/api/v1/auth/me", headers = victim }).status)
    end)
  end)
end)

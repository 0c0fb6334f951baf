-- Helpers for the black-box API specs: a fresh database with the real core
-- and tenant migrations and seeds, tenants in any isolation mode, a server
-- running the real scripts/api, tenant users with roles, logins, and JSON
-- calls. Every response that passes through `call` is checked for password
-- hashes: no endpoint may ever send one.
--
--   local api = require "helpers.api"
--   api.suite(_ENV, "users API", "users", { users_other = "shared" }, function(t)
--     it("lists users", function()         -- t.code: users_shared, ...
--       local r = t.call("GET", "/api/v1/users")   -- as its super_admin
--       local tok = t.env:user(t.code, { "viewer" })
--       r = t.env:call("GET", "/api/v1/users", { token = tok })
--     end)
--   end)
local h = require "helpers"
local mig = require "helpers.migrate"
local cjson = require "cjson"

local M = {}

M.SECRET = "api-spec-secret-0123456789abcdef0123456789"
M.PASSWORD = "Correct-Horse-Battery-9"
M.MODES = { "shared", "schema", "database" }
M.null = cjson.null

local env_mt = {}
env_mt.__index = env_mt

-- An environment for the spec file `name` (database rt_mig_<name>); start
-- it in setup.
function M.new(name)
  return setmetatable({ name = name, tenants = {}, admins = {}, n = 0 }, env_mt)
end

-- A database, the core migrations, and a server on the real scripts.
function env_mt:start()
  self.ctx = mig.new(self.name)
  local ctx = self.ctx
  local _, ok = h.run("cp " .. h.sh_quote(h.root .. "/scripts/migrations/tenant") .. "/*.lua "
    .. h.sh_quote(ctx.tenant_dir) .. "/ && mkdir -p " .. h.sh_quote(ctx.scripts .. "/seeds")
    .. " && cp " .. h.sh_quote(h.root .. "/scripts/seeds") .. "/*.lua "
    .. h.sh_quote(ctx.scripts .. "/seeds") .. "/")
  assert(ok, "cannot copy the tenant migrations and seeds")
  local res = ctx:migrate("")
  assert(res.code == 0, mig.explain(res))
  self.srv = h.start({
    scripts = h.root .. "/scripts",
    database_url = ctx.app_url,
    threads = 4,
    env = M.server_env(ctx),
  })
end

-- The environment of a server of this spec: the owner URL too, so the
-- platform routes can provision, recreate and purge tenants.
function M.server_env(ctx)
  return {
    RUNTIME_AUTH_JWT_SECRET = M.SECRET,
    RUNTIME_DATABASE_OWNER_URL = ctx.owner_url,
    RUNTIME_TENANCY_REFRESH_MS = "100",
    RUNTIME_AUTH_REVOCATION_REFRESH_MS = "100",
  }
end

-- A second server (another replica) on the same database; stop it with
-- :stop(). Returns an object with call(method, path, opts) like env:call.
function env_mt:replica()
  local srv = h.start({
    scripts = h.root .. "/scripts",
    database_url = self.ctx.app_url,
    threads = 2,
    env = M.server_env(self.ctx),
  })
  local other = setmetatable({ srv = srv, ctx = self.ctx }, env_mt)
  return other
end

function env_mt:destroy()
  if self.srv then
    self.srv:stop()
  end
  if self.ctx then
    self.ctx:destroy()
  end
end

-- describe(title) with one environment for the file, the tenants in others
-- ({ code = mode }), and body(t) once per isolation mode in a describe of its
-- own with a fresh tenant <name>_<mode>: t.env, t.code, t.mode, and
-- t.call(method, path, body, token) as that tenant's super_admin unless
-- token is given. spec: the spec file's _ENV, where busted put describe,
-- setup and teardown.
function M.suite(spec, title, name, others, body)
  local describe, setup, teardown = spec.describe, spec.setup, spec.teardown
  describe(title, function()
    local env = M.new("api_" .. name)

    setup(function()
      env:start()
      for code, mode in pairs(others) do
        env:tenant(code, mode)
      end
    end)

    teardown(function()
      env:destroy()
    end)

    for _, mode in ipairs(M.MODES) do
      describe("(" .. mode .. ")", function()
        local t = { env = env, mode = mode, code = name .. "_" .. mode }
        function t.call(method, path, b, token)
          return env:call(method, path, { token = token or env:admin(t.code), body = b })
        end
        setup(function()
          env:tenant(t.code, mode)
        end)
        body(t)
      end)
    end
  end)
end

-- Provisions a tenant in mode (shared, schema or database) that allows
-- self-registration, so specs can make users; returns its id.
function env_mt:tenant(code, mode)
  local res = self.ctx:tenant_cmd({ "create", code, "--isolation", mode })
  assert(res.code == 0, mig.explain(res))
  if mode == "database" then
    self.ctx.databases[#self.ctx.databases + 1] = "t_" .. code
  end
  -- updated_at too: the server notices directory changes by it
  self.ctx:sql("UPDATE core.tenants SET settings = '{\"allow_registration\": true}', "
    .. "updated_at = now() "
    .. "WHERE code = '" .. code .. "'")
  local id = tonumber(self.ctx:sql("SELECT id FROM core.tenants WHERE code = '" .. code .. "'"))
  self.tenants[code] = { id = id, mode = mode }
  h.sleep(0.4) -- the server's directory refresh (100 ms)
  return id
end

-- psql as the owner inside a tenant's scope (its schema or database, and
-- app.tenant_id for the row-level security policies).
function env_mt:sql(code, sql)
  local t = assert(self.tenants[code], "unknown tenant " .. code)
  local url, path = self.ctx.owner_url, ({ shared = "shared", schema = "t_" .. code })[t.mode]
  if t.mode == "database" then
    url, path = mig.db_url(h.owner_url, "t_" .. code), "public"
  end
  return h.psql(("SET app.tenant_id = '%d'; SET search_path = %s; %s"):format(t.id, path, sql),
    url)
end

-- One request. opts: token, tenant (X-Tenant-Id), body (a table: JSON; a
-- string: sent as is), headers. Returns { status, headers, body, json }.
function env_mt:call(method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do
    headers[k] = v
  end
  if opts.token then
    headers.Authorization = "Bearer " .. opts.token
  end
  if opts.tenant then
    headers["X-Tenant-Id"] = opts.tenant
  end
  local body = opts.body
  if type(body) == "table" then
    body = cjson.encode(body)
  end
  if body then
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  end
  local r = self.srv:request({ method = method, path = path, headers = headers, body = body })
  assert(not r.body:find("password_hash", 1, true) and not r.body:find("$argon2", 1, true),
    method .. " " .. path .. " sent a password hash: " .. r.body)
  if r.json then
    r.json = mig.denull(r.json)
  end
  return r
end

-- Registers a user in a tenant (self-registration); returns the user's id.
function env_mt:register(code, username, password)
  local r = self:call("POST", "/api/v1/auth/register", { tenant = code, body = {
    username = username, email = username .. "@" .. code .. ".test",
    password = password or M.PASSWORD } })
  assert(r.status == 201, r.body)
  return r.json.id
end

-- Gives a user a role by code, directly in the database.
function env_mt:grant(code, user_id, role)
  self:sql(code, ("INSERT INTO user_roles (user_id, role_id) SELECT %d, id FROM roles "
    .. "WHERE code = '%s'"):format(user_id, role))
end

-- Logs in to a tenant (nil: the platform); returns the access token.
function env_mt:login(code, username, password)
  local r = self:call("POST", "/api/v1/auth/login", { tenant = code,
    body = { username = username, password = password or M.PASSWORD } })
  assert(r.status == 200, "login " .. tostring(username) .. ": " .. r.body)
  return r.json.access_token, r.json
end

-- A new user of the tenant holding the given roles (none: no roles);
-- returns the token and the user's id.
function env_mt:user(code, roles)
  self.n = self.n + 1
  local name = "user" .. self.n
  local id = self:register(code, name)
  for _, role in ipairs(roles or {}) do
    self:grant(code, id, role)
  end
  return self:login(code, name), id
end

-- The token of a super_admin of the tenant (made once).
function env_mt:admin(code)
  if not self.admins[code] then
    self.admins[code] = self:user(code, { "super_admin" })
  end
  return self.admins[code]
end

-- The token of a platform superuser (a core user).
function env_mt:platform_admin()
  if not self.platform then
    local email = "root" .. math.random(1e6) .. "@platform.test"
    local r = self:call("POST", "/api/v1/auth/register", { body = { email = email,
      password = M.PASSWORD } })
    assert(r.status == 201, r.body)
    self.ctx:sql("UPDATE core.users SET is_superuser = true WHERE email = '" .. email .. "'")
    self.platform = self:login(nil, email)
  end
  return self.platform
end

return M

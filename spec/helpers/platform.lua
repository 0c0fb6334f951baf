-- Helpers for the platform API specs (spec/07-platform): a fresh database
-- with the real scripts (api, migrations, seeds), migrated, with a platform
-- superuser; a server that can provision tenants (the owner URL); and small
-- HTTP helpers for JSON calls with tokens.
local h = require "helpers"
local mig = require "helpers.migrate"
local cjson = require "cjson"

local M = {}

M.ADMIN_EMAIL = "admin@example.com"
M.ADMIN_PASSWORD = "a-long-password-1"
M.SECRET = "platform-spec-secret-0123456789abcdef"

local q = h.sh_quote

local env_mt = {}
env_mt.__index = env_mt

-- Starts everything for one spec file; name makes the database unique.
function M.new(name)
  local env = setmetatable({}, env_mt)
  local ctx = mig.new(name)
  env.ctx = ctx
  local _, ok = h.run("mkdir -p " .. q(ctx.scripts .. "/api") .. " " .. q(ctx.scripts
    .. "/seeds") .. " && cp " .. q(h.root .. "/scripts/api") .. "/*.lua "
    .. q(ctx.scripts .. "/api") .. "/ && cp " .. q(h.root .. "/scripts/seeds") .. "/*.lua "
    .. q(ctx.scripts .. "/seeds") .. "/ && cp " .. q(h.root .. "/scripts/migrations/tenant")
    .. "/*.lua " .. q(ctx.tenant_dir) .. "/ && cp -r " .. q(h.root .. "/scripts/lib") .. " "
    .. q(h.root .. "/scripts/events") .. " " .. q(ctx.scripts) .. "/")
  assert(ok, "cannot copy the scripts")
  local res = ctx:migrate("")
  assert(res.code == 0, mig.explain(res))
  res = ctx:migrate({ "create", M.ADMIN_EMAIL, "--superuser" },
    { RUNTIME_USER_PASSWORD = M.ADMIN_PASSWORD }, "user")
  assert(res.code == 0, mig.explain(res))
  env.srv = h.start({
    scripts = ctx.scripts,
    database_url = ctx.app_url,
    threads = 2,
    env = {
      RUNTIME_DATABASE_OWNER_URL = ctx.owner_url,
      RUNTIME_AUTH_JWT_SECRET = M.SECRET,
      RUNTIME_TENANCY_REFRESH_MS = "100",
      RUNTIME_AUTH_REVOCATION_REFRESH_MS = "100",
    },
  })
  return env
end

function env_mt:destroy()
  if self.srv then
    self.srv:stop()
  end
  self.ctx:destroy()
end

-- A database-mode tenant's database, dropped with the spec's database.
function env_mt:owns_database(code)
  self.ctx.databases[#self.ctx.databases + 1] = "t_" .. code
end

-- One JSON call: method, path, token (or nil), body (a table, a string or
-- nil), extra headers. Returns the response; res.json is decoded with JSON
-- null as nil and whole numbers as integers.
function env_mt:call(method, path, token, body, headers)
  local hs = {}
  for k, v in pairs(headers or {}) do
    hs[k] = v
  end
  if token then
    hs.Authorization = "Bearer " .. token
  end
  if type(body) == "table" then
    body = cjson.encode(body)
  end
  if body then
    hs["Content-Type"] = "application/json"
  end
  local res = self.srv:request({ method = method, path = path, headers = hs, body = body })
  res.json = mig.decode(res.body)
  return res
end

-- Logs in; tenant (a code) makes it a tenant login. Returns the token.
function env_mt:login(email, password, tenant)
  local r = self:call("POST", "/api/v1/auth/login", nil,
    { username = email, password = password }, tenant and { ["X-Tenant-Id"] = tenant })
  assert(r.status == 200, "login " .. email .. " failed: " .. r.status .. " " .. r.body)
  return r.json.access_token
end

function env_mt:admin_token()
  if not self.admin then
    self.admin = self:login(M.ADMIN_EMAIL, M.ADMIN_PASSWORD)
  end
  return self.admin
end

-- Registers and logs in a platform (core) user; returns the token.
function env_mt:core_user(email, password)
  local r = self:call("POST", "/api/v1/auth/register", nil,
    { email = email, password = password, full_name = email:match("^[^@]+") })
  assert(r.status == 201, "register failed: " .. r.status .. " " .. r.body)
  return self:login(email, password)
end

-- Calls fn until it returns true (the server's directory snapshot follows
-- the database within tenancy.refresh_ms); fails after about 5 s.
function M.eventually(fn, what)
  for _ = 1, 100 do
    if fn() then
      return
    end
    h.sleep(0.05)
  end
  error("timed out waiting for " .. (what or "a condition"))
end

-- A tenant login that waits for the server to see a new tenant (its
-- directory snapshot follows within tenancy.refresh_ms). Returns the token.
function env_mt:tenant_login(code, email, password)
  local token
  M.eventually(function()
    local r = self:call("POST", "/api/v1/auth/login", nil,
      { username = email, password = password }, { ["X-Tenant-Id"] = code })
    token = r.status == 200 and r.json.access_token
    return token
  end, "a tenant login to " .. code)
  return token
end

return M

-- Helpers for the `runtime migrate` specs: a fresh database per spec file, a
-- scripts directory with the real core steps and the tenant steps a spec
-- writes, running the binary with the owner URL, and reading ledgers and the
-- directory back with psql.
--
-- Every spec file calls M.new("<name>") in setup and ctx:destroy() in
-- teardown; the database is rt_mig_<name>, owned by rt_owner.
local h = require "helpers"
local cjson = require "cjson"

local M = {}

local q = h.sh_quote

M.core_src = h.root .. "/scripts/migrations/core"

-- The real core steps: their count, and the version list {1, ..., n + extra}.
M.CORE_HEAD = select(2, h.run("ls " .. h.sh_quote(M.core_src) .. "/*.lua"):gsub("\n", ""))
-- The real tenant steps' head (every tenant and the shared target reach it).
M.TENANT_HEAD = select(2, h.run("ls " .. h.sh_quote(h.root .. "/scripts/migrations/tenant")
  .. "/*.lua"):gsub("\n", ""))
function M.core_versions(extra)
  local v = {}
  for i = 1, M.CORE_HEAD + (extra or 0) do
    v[i] = i
  end
  return v
end

-- Longest any single runtime invocation may take before it is killed.
M.timeout = 90

-- The URL with its database name replaced (keeps user, host and query).
function M.db_url(url, dbname)
  assert(url, "database URL not set (run through ./dev test)")
  local prefix, rest = url:match("^(postgres[%w]*://[^/]*/)(.*)$")
  assert(prefix, "cannot parse database URL")
  local query = rest:match("(%?.*)$") or ""
  return prefix .. dbname .. query
end

-- JSON null -> nil and whole floats -> integers, recursively (rows and engine
-- output read naturally).
local function denull(v)
  if v == cjson.null then
    return nil
  end
  -- cjson decodes every number as a float: give whole numbers back as
  -- integers, so 3 and not 3.0 ends up in keys and messages.
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return math.tointeger(v)
  end
  if type(v) == "table" then
    for k, x in pairs(v) do
      v[k] = denull(x)
    end
  end
  return v
end
M.denull = denull

function M.decode(s)
  local ok, v = pcall(cjson.decode, s or "")
  if not ok then
    return nil
  end
  return denull(v)
end

function M.sha256(path)
  local out = h.run("sha256sum " .. q(path))
  return out:match("^(%x+)")
end

-- Finds the first element of list whose field equals value.
function M.find(list, field, value)
  for _, v in ipairs(list or {}) do
    if type(v) == "table" and v[field] == value then
      return v
    end
  end
  return nil
end

-- Versions out of a list of numbers or of { version = N, ... } tables.
function M.versions_of(list)
  local out = {}
  for _, v in ipairs(list or {}) do
    if type(v) == "table" then
      out[#out + 1] = tonumber(v.version)
    else
      out[#out + 1] = tonumber(v)
    end
  end
  table.sort(out)
  return out
end

function M.admin(sql)
  return h.psql(sql, h.admin_url)
end

-- Drops (if present) and creates a database owned by rt_owner that rt_app
-- may connect to.
function M.create_database(name)
  M.admin("DROP DATABASE IF EXISTS " .. name .. " WITH (FORCE)")
  M.admin("CREATE DATABASE " .. name .. " OWNER rt_owner")
  M.admin("REVOKE ALL ON DATABASE " .. name .. " FROM PUBLIC")
  M.admin("GRANT CONNECT ON DATABASE " .. name .. " TO rt_app")
end

function M.drop_database(name)
  pcall(M.admin, "DROP DATABASE IF EXISTS " .. name .. " WITH (FORCE)")
end

local ctx_mt = {}
ctx_mt.__index = ctx_mt

-- opts.jobs: migrate.jobs in the config (default 4).
function M.new(name, opts)
  opts = opts or {}
  local ctx = setmetatable({}, ctx_mt)
  ctx.dbname = "rt_mig_" .. name
  ctx.databases = { ctx.dbname }
  ctx.procs = {}
  M.create_database(ctx.dbname)
  ctx.owner_url = M.db_url(h.owner_url, ctx.dbname)
  ctx.app_url = M.db_url(h.app_url, ctx.dbname)
  ctx.dir = (h.run("mktemp -d /tmp/rt-mig-" .. name .. ".XXXXXX"):gsub("%s+$", ""))
  assert(ctx.dir ~= "", "mktemp failed")
  ctx.scripts = ctx.dir .. "/scripts"
  ctx.core_dir = ctx.scripts .. "/migrations/core"
  ctx.tenant_dir = ctx.scripts .. "/migrations/tenant"
  local _, ok = h.run("mkdir -p " .. q(ctx.core_dir) .. " " .. q(ctx.tenant_dir)
    .. " && cp " .. q(M.core_src) .. "/*.lua " .. q(ctx.core_dir) .. "/")
  assert(ok, "cannot build the scripts directory")
  ctx.cfg = ctx.dir .. "/config.lua"
  h.write_all(ctx.cfg, string.format("return { scripts = { dir = %q }, migrate = { jobs = %d } }\n",
    ctx.scripts, opts.jobs or 4))
  return ctx
end

function ctx_mt:destroy()
  for _, p in ipairs(self.procs) do
    if p.pid then
      h.run("kill -KILL " .. p.pid .. " 2>/dev/null")
    end
  end
  -- The template databases it made live outside its database.
  pcall(self.tenant_cmd, self, { "spares", "--drop" })
  for _, db in ipairs(self.databases) do
    M.drop_database(db)
  end
  if self.dir and self.dir:match("^/tmp/rt%-mig%-") then
    h.run("rm -rf " .. q(self.dir))
  end
end

-- A further database owned by rt_owner (database-mode tenants), dropped by
-- destroy.
function ctx_mt:create_database(name)
  M.create_database(name)
  self.databases[#self.databases + 1] = name
  return M.db_url(h.owner_url, name)
end

-- Copies the real endpoint scripts into the spec's scripts directory, with
-- the folders they require (scripts/lib, scripts/events) where those exist.
function ctx_mt:copy_api()
  local cmd = { "mkdir -p " .. q(self.scripts .. "/api") .. " && cp " .. q(h.root
    .. "/scripts/api") .. "/*.lua " .. q(self.scripts .. "/api") .. "/" }
  for _, d in ipairs({ "lib", "events" }) do
    local src = q(h.root .. "/scripts/" .. d)
    cmd[#cmd + 1] = "if [ -d " .. src .. " ]; then cp -r " .. src .. " " .. q(self.scripts)
      .. "/; fi"
  end
  local out, ok = h.run(table.concat(cmd, " && ") .. " 2>&1")
  assert(ok, "cannot copy the scripts: " .. out)
end

-- Migrates core and makes platform user email (`runtime user create`);
-- returns the user's id.
function ctx_mt:platform_user(email, password)
  local res = self:migrate("")
  assert(res.code == 0, M.explain(res))
  res = self:migrate({ "create", email }, { RUNTIME_USER_PASSWORD = password }, "user")
  assert(res.code == 0, M.explain(res))
  return self:sql("SELECT id FROM core.users WHERE email = " .. self:literal(email))
end

-- Step files ----------------------------------------------------------------

function ctx_mt:step_path(kind, file)
  return self.scripts .. "/migrations/" .. kind .. "/" .. file
end

function ctx_mt:write_step(kind, file, src)
  local path = self:step_path(kind, file)
  h.write_all(path, src)
  return path
end

function ctx_mt:remove_step(kind, file)
  os.remove(self:step_path(kind, file))
end

-- Removes every file from migrations/<kind>/ (core: also the real steps).
function ctx_mt:clear_steps(kind)
  h.run("rm -f " .. q(self.scripts .. "/migrations/" .. kind) .. "/*")
end

-- Replaces migrations/tenant/ with files = { ["0001_x.lua"] = src, ... }.
function ctx_mt:tenant_steps(files)
  self:clear_steps("tenant")
  for file, src in pairs(files) do
    self:write_step("tenant", file, src)
  end
end

-- Running the binary ----------------------------------------------------------

local function args_string(args)
  if type(args) == "table" then
    local parts = {}
    for i, a in ipairs(args) do
      parts[i] = q(a)
    end
    return table.concat(parts, " ")
  end
  return args or ""
end

function ctx_mt:env_prefix(env)
  local vars = {
    RUNTIME_DATABASE_OWNER_URL = self.owner_url,
    RUNTIME_DATABASE_URL = self.app_url,
  }
  for k, v in pairs(env or {}) do
    vars[k] = v
  end
  local assigns = {}
  for k, v in pairs(vars) do
    assigns[#assigns + 1] = k .. "=" .. q(v)
  end
  table.sort(assigns)
  -- Nothing from a dev shell may redirect the run elsewhere.
  return "env -u RUNTIME_CONFIG -u RUNTIME_SCRIPTS_DIR -u RUNTIME_MIGRATE_JOBS "
    .. "-u RUNTIME_MIGRATE_LOCK_TIMEOUT_MS -u RUNTIME_DATABASE_OWNER_URL "
    .. table.concat(assigns, " ")
end

-- sub: the runtime subcommand ("migrate" unless given).
function ctx_mt:command(args, env, sub)
  return self:env_prefix(env) .. " " .. q(h.bin) .. " " .. (sub or "migrate") .. " "
    .. args_string(args) .. " --config " .. q(self.cfg)
end

local function result(out, err, code)
  return {
    code = code,
    out = out or "",
    err = err or "",
    output = (out or "") .. (err or ""),
    json = M.decode(out),
  }
end

-- Runs `runtime migrate <args> --config <cfg>` to completion. args: a string
-- (shell words, already quoted) or a list. Returns { code, out, err, output,
-- json }: stdout and stderr separately, json decoded from stdout (or nil).
function ctx_mt:migrate(args, env, sub)
  local out_f, err_f = os.tmpname(), os.tmpname()
  local cmd = "timeout -s KILL " .. M.timeout .. " " .. self:command(args, env, sub) .. " >"
    .. q(out_f) .. " 2>" .. q(err_f) .. "; echo $?"
  local rc = tonumber((h.run(cmd)))
  local res = result(h.read_all(out_f), h.read_all(err_f), rc)
  os.remove(out_f)
  os.remove(err_f)
  return res
end

-- Runs `runtime tenant <args> --config <cfg>`; same result shape as migrate.
function ctx_mt:tenant_cmd(args, env)
  return self:migrate(args, env, "tenant")
end

-- Starts `runtime migrate <args>` in the background; returns a process with
-- pid (the runtime process itself), for :wait() and kill.
function ctx_mt:spawn(args, env)
  local n = #self.procs + 1
  local base = self.dir .. "/proc" .. n
  local p = {
    pid_f = base .. ".pid",
    out_f = base .. ".out",
    err_f = base .. ".err",
    rc_f = base .. ".rc",
  }
  local inner = "echo $$ >" .. q(p.pid_f) .. "; exec " .. self:command(args, env)
  h.run("( sh -c " .. q(inner) .. " >" .. q(p.out_f) .. " 2>" .. q(p.err_f)
    .. "; echo $? >" .. q(p.rc_f) .. ".tmp; mv " .. q(p.rc_f) .. ".tmp " .. q(p.rc_f)
    .. " ) </dev/null >/dev/null 2>&1 &")
  for _ = 1, 100 do
    local s = h.read_all(p.pid_f)
    if s and tonumber(s) then
      p.pid = tonumber(s)
      break
    end
    h.sleep(0.02)
  end
  assert(p.pid, "background migrate did not start")
  self.procs[n] = p
  return p
end

-- Waits (bounded) for a spawned process; returns its result as :migrate does,
-- or kills it and fails after `timeout` seconds.
function ctx_mt:wait(p, timeout)
  local deadline = os.time() + (timeout or M.timeout)
  while os.time() <= deadline do
    local rc = h.read_all(p.rc_f)
    if rc and tonumber(rc) then
      p.pid = nil
      return result(h.read_all(p.out_f), h.read_all(p.err_f), tonumber(rc))
    end
    h.sleep(0.05)
  end
  h.run("kill -KILL " .. p.pid .. " 2>/dev/null")
  error("background migrate did not finish in time:\n" .. (h.read_all(p.err_f) or ""))
end

-- Reading the database ------------------------------------------------------

-- psql as rt_owner on the test database (or url); trimmed output.
function ctx_mt:sql(sql, url)
  return h.psql(sql, url or self.owner_url)
end

-- Rows of a query as a list of tables (via json_agg), nulls as nil.
function ctx_mt:rows(sql, url)
  local out = self:sql("SELECT coalesce(json_agg(r), '[]') FROM (" .. sql .. ") r", url)
  return assert(M.decode(out), "cannot decode rows: " .. out)
end

function ctx_mt:exists(regclass, url)
  return self:sql("SELECT to_regclass(" .. self:literal(regclass) .. ") IS NOT NULL", url) == "t"
end

function ctx_mt:schema_exists(name, url)
  return self:sql("SELECT count(*) FROM pg_namespace WHERE nspname = "
    .. self:literal(name), url) == "1"
end

function ctx_mt:literal(s)
  return "'" .. tostring(s):gsub("'", "''") .. "'"
end

-- Ledger rows of a schema ({} when the ledger does not exist), by version.
function ctx_mt:ledger(schema, url)
  if not self:exists(schema .. ".schema_migrations", url) then
    return {}
  end
  return self:rows("SELECT version, name, checksum, dirty FROM " .. schema
    .. ".schema_migrations ORDER BY version", url)
end

-- Applied versions of a schema's ledger, e.g. { 1, 2, 3 }.
function ctx_mt:versions(schema, url)
  local out = {}
  for _, r in ipairs(self:ledger(schema, url)) do
    out[#out + 1] = r.version
  end
  return out
end

-- The directory row of a tenant (nil when absent).
function ctx_mt:tenant(code)
  return self:rows("SELECT * FROM core.tenants WHERE code = " .. self:literal(code))[1]
end

-- Inserts schema-mode tenants: codes is a list of codes.
function ctx_mt:add_tenants(codes, status)
  local values = {}
  for i, code in ipairs(codes) do
    values[i] = string.format("(%s, %s, 'schema', %s, %s)", self:literal(code),
      self:literal(code:upper()), self:literal(status or "active"), self:literal("t_" .. code))
  end
  self:sql("INSERT INTO core.tenants (code, name, isolation, status, schema_name) VALUES "
    .. table.concat(values, ", "))
end

-- Inserts a database-mode tenant and creates its database t_<code>; returns
-- the owner URL of that database.
function ctx_mt:add_database_tenant(code)
  local url = self:create_database("t_" .. code)
  self:sql(string.format("INSERT INTO core.tenants (code, name, isolation, status, "
    .. "database_name) VALUES (%s, %s, 'database', 'active', %s)", self:literal(code),
    self:literal(code:upper()), self:literal("t_" .. code)))
  return url
end

-- Codes prefix01 .. prefixNN.
function M.codes(prefix, n)
  local out = {}
  for i = 1, n do
    out[i] = string.format("%s%02d", prefix, i)
  end
  return out
end

-- Formats a failure message with the command's output, for assert messages.
function M.explain(res)
  return string.format("exit %s\n--- stdout\n%s\n--- stderr\n%s", tostring(res.code),
    res.out, res.err)
end

return M

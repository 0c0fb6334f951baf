-- Spec helpers: run the real runtime binary against the real database, talk
-- to it with curl, and inspect the database with psql.
--
-- Environment (set by ./dev test): RUNTIME_BIN, RUNTIME_DATABASE_URL (rt_app),
-- RT_TEST_OWNER_URL (rt_owner), RT_TEST_ADMIN_URL (superuser).
local M = {}

M.root = os.getenv("PWD") or "."
M.bin = os.getenv("RUNTIME_BIN") or (M.root .. "/build/runtime")
M.app_url = os.getenv("RUNTIME_DATABASE_URL")
M.owner_url = os.getenv("RT_TEST_OWNER_URL")
M.admin_url = os.getenv("RT_TEST_ADMIN_URL")

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.sh_quote = sh_quote

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end
M.read_all = read_all

local function write_all(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end
M.write_all = write_all

-- Runs a shell command; returns its stdout and whether it exited 0.
function M.run(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

function M.sleep(seconds)
  os.execute("sleep " .. tostring(seconds))
end

-- A random high port; M.start retries when it turns out to be taken.
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
function M.free_port()
  return math.random(20000, 60000)
end

-- psql against the test database; returns the trimmed output.
function M.psql(sql, url)
  url = url or M.owner_url
  local out, ok = M.run("psql -X -q -A -t -v ON_ERROR_STOP=1 " .. sh_quote(url)
    .. " -c " .. sh_quote(sql) .. " 2>&1")
  assert(ok, "psql failed: " .. out)
  return (out:gsub("%s+$", ""))
end

-- Writes a config file; `tbl` is Lua source for the returned table.
function M.config_file(body)
  local path = os.tmpname()
  write_all(path, "return " .. body .. "\n")
  return path
end

local server_mt = {}
server_mt.__index = server_mt

-- Starts `runtime serve`. opts: scripts (dir), env (table), database (Lua
-- fields of the database section), extra (more top-level config fields, such
-- as a servers table), threads, max_body, grace, log_level, wait (default true).
function M.start(opts)
  for _ = 1, 5 do
    local s, err = M.try_start(opts)
    if s then
      return s
    end
    if not err:find("cannot listen", 1, true) then
      error(err)
    end
  end
  error("no free port found")
end

function M.try_start(opts)
  opts = opts or {}
  local port = M.free_port()
  local log = os.tmpname()
  local cfg = M.config_file(string.format(
    "{ http = { port = %d, threads = %d, shutdown_grace = %d, max_body = %d }, "
      .. "scripts = { dir = %q }, database = { %s }, log = { level = %q }, %s }",
    port, opts.threads or 2, opts.grace or 10, opts.max_body or 65536,
    opts.scripts or (M.root .. "/spec/fixtures/scripts"),
    opts.database or "", opts.log_level or "info", opts.extra or ""))
  local env = { RUNTIME_DATABASE_URL = opts.database_url or M.app_url }
  for k, v in pairs(opts.env or {}) do
    env[k] = v
  end
  local assigns = {}
  for k, v in pairs(env) do
    assigns[#assigns + 1] = k .. "=" .. sh_quote(v)
  end
  local cmd = string.format("env %s %s serve --config %s >%s 2>&1 & echo $!",
    table.concat(assigns, " "), sh_quote(M.bin), sh_quote(cfg), sh_quote(log))
  local pid = tonumber((M.run(cmd)))
  local s = setmetatable({ pid = pid, port = port, log = log, cfg = cfg }, server_mt)
  if opts.wait ~= false then
    local ok, err = pcall(s.wait_ready, s)
    if not ok then
      s:stop()
      return nil, tostring(err)
    end
  end
  return s
end

function server_mt:alive()
  local _, ok = M.run("kill -0 " .. self.pid .. " 2>/dev/null")
  return ok
end

function server_mt:wait_ready()
  for _ = 1, 200 do
    local r = self:request({ path = "/healthz" })
    if r.status == 200 then
      return
    end
    if not self:alive() then
      error("runtime exited during start-up:\n" .. (read_all(self.log) or ""))
    end
    M.sleep(0.05)
  end
  error("runtime did not come up:\n" .. (read_all(self.log) or ""))
end

-- Waits for the process to exit; returns its exit status (from wait).
function server_mt:wait_exit(timeout)
  for _ = 1, (timeout or 10) * 20 do
    if not self:alive() then
      return true
    end
    M.sleep(0.05)
  end
  return false
end

function server_mt:stop()
  if self.pid and self:alive() then
    M.run("kill -TERM " .. self.pid)
    if not self:wait_exit(15) then
      M.run("kill -KILL " .. self.pid)
    end
  end
  os.remove(self.cfg)
end

function server_mt:logs()
  return read_all(self.log) or ""
end

-- One HTTP request with curl. r: method, path, headers (table), body,
-- data_file, raw (extra curl args). Returns { status, headers, body }.
function server_mt:request(r)
  return M.request(self.port, r)
end

-- Headers with a bearer token, plus the extra ones given.
function M.bearer(token, extra)
  local hdr = { Authorization = "Bearer " .. token }
  for k, v in pairs(extra or {}) do
    hdr[k] = v
  end
  return hdr
end

-- POST of body (a table, sent as JSON; nil: no body) with a bearer token
-- when one is given.
function server_mt:post_json(path, body, token)
  local hdr = { ["Content-Type"] = "application/json" }
  if token then
    hdr.Authorization = "Bearer " .. token
  end
  return self:request({ method = "POST", path = path, headers = hdr,
    body = body and require("cjson").encode(body) or nil })
end

function M.request(port, r)
  local out_body, out_head = os.tmpname(), os.tmpname()
  local args = { "curl -s -S --max-time 30 -o", sh_quote(out_body), "-D",
    sh_quote(out_head), "-w '%{http_code}'" }
  if r.method ~= "HEAD" then -- curl --head sends HEAD and expects no body
    args[#args + 1] = "-X " .. (r.method or "GET")
  end
  for k, v in pairs(r.headers or {}) do
    args[#args + 1] = "-H " .. sh_quote(k .. ": " .. v)
  end
  local body_file
  if r.body then
    body_file = os.tmpname()
    write_all(body_file, r.body)
    args[#args + 1] = "--data-binary @" .. sh_quote(body_file)
  end
  if r.raw then
    args[#args + 1] = r.raw
  end
  args[#args + 1] = sh_quote("http://127.0.0.1:" .. port .. (r.path or "/"))
  local code = M.run(table.concat(args, " ") .. " 2>/dev/null")
  local headers = {}
  for line in (read_all(out_head) or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then
      headers[k:lower()] = v
    end
  end
  local res = {
    status = tonumber(code) or 0,
    headers = headers,
    body = read_all(out_body) or "",
  }
  os.remove(out_body)
  os.remove(out_head)
  if body_file then
    os.remove(body_file)
  end
  local cjson = require "cjson"
  local ok, v = pcall(cjson.decode, res.body)
  res.json = ok and v or nil
  return res
end

-- Runs the binary to completion (for start-up failures).
function M.run_bin(args, env)
  local assigns = {}
  for k, v in pairs(env or {}) do
    assigns[#assigns + 1] = k .. "=" .. sh_quote(v)
  end
  return (M.run("env " .. table.concat(assigns, " ") .. " " .. sh_quote(M.bin) .. " "
    .. args .. " 2>&1; echo \"exit=$?\""))
end

return M

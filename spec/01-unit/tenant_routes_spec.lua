-- The tenant-scope route files (scripts/api/users.lua, roles.lua,
-- permissions.lua, user_groups.lua, menus.lua, boards.lua) in plain Lua:
-- their route tables, and the handler logic that needs no database, with
-- lib/crud and lib/guards as they are and a scripted rt.db.
local unit = require "helpers.unit"

local NULL, http_error = unit.null, unit.http_error

local FILES = { "users", "roles", "permissions", "user_groups", "menus", "boards" }

local db = unit.db()
local rt = unit.rt()
local auth_calls = {}
local auth = setmetatable({
  password_problem = function(pw)
    return #pw < 8 and "must be at least 8 characters" or nil
  end,
  hash_password = function(pw)
    return "hash:" .. pw
  end,
}, { __index = function(_, name)
  return function(...)
    auth_calls[#auth_calls + 1] = { name, ... }
    return true -- the runtime's convention: true, or nil and a message
  end
end })
unit.install({ rt = rt, ["rt.db"] = db, ["rt.json"] = unit.json, ["rt.auth"] = auth },
  { "lib.crud", "lib.guards", "lib.resources" })

local prelude = assert(loadfile("runtime/lua/prelude.lua"))(debug.traceback,
  unit.json.encode, unit.json.decode, unit.rt())

local function routes_of(name)
  return dofile("scripts/api/" .. name .. ".lua")
end

local function req(fields)
  local r = { params = {}, query = {}, tenant = { id = 3 },
    user = { scope = "tenant", id = "7" } }
  for k, v in pairs(fields or {}) do
    r[k] = v
  end
  local body = r.body
  r.json = function()
    return body
  end
  return r
end

before_each(function()
  db.reset()
  auth_calls = {}
end)

after_each(function()
  assert.same({}, db.replies, "every statement a spec expects is run")
end)

describe("tenant route files", function()
  it("are valid route tables whose every path is spelled out in the file", function()
    local total = 0
    for _, name in ipairs(FILES) do
      local file = "scripts/api/" .. name .. ".lua"
      local f = assert(io.open(file))
      local text = f:read("a")
      f:close()
      local routes = prelude.collect(file, routes_of(name))
      for _, r in ipairs(routes) do
        assert.truthy(text:find('["' .. r.pattern .. '"]', 1, true), file .. ": " .. r.pattern)
        assert.matches("^/api/v1/", r.pattern)
      end
      total = total + #routes
    end
    assert.equal(48, total)
  end)
end)

describe("POST /api/v1/permissions", function()
  local create = routes_of("permissions")["/api/v1/permissions"].POST.handler

  it("derives the code and name from resource and action", function()
    db.reply({ { id = 1 } })
    assert.same({ status = 201, json = { id = 1 } },
      create(req({ body = { resource = "report", action = "read" } })))
    assert.matches("^INSERT INTO permissions %(code, name, resource, action%)", db.calls[1].sql)
    assert.same({ "report_read", "Read report", "report", "read", n = 4 }, db.calls[1].args)
  end)

  it("refuses a code that is not {resource}_{action}", function()
    local e = http_error(create, req({ body = { resource = "report", action = "read",
      permission_code = "report_write" } }))
    assert.same({ code = "must be {resource}_{action}: report_read" }, e.fields)
    assert.equal(0, #db.calls)
  end)
end)

describe("PUT /api/v1/menus/order", function()
  local reorder = routes_of("menus")["/api/v1/menus/order"].PUT.handler
  -- menus 1 <- 2 <- 3 (3's parent is 2, 2's is 1), and 4 at the top
  local MENUS = { { id = 1, parent_id = NULL }, { id = 2, parent_id = 1 },
    { id = 3, parent_id = 2 }, { id = 4, parent_id = NULL } }

  it("moves menus and keeps the parent of items that leave it out", function()
    db.reply({ MENUS }, { 2 })
    local res = reorder(req({ body = { items = {
      { id = 3, parent_id = NULL, sort_order = 1 }, { id = 2, sort_order = 5 } } } }))
    assert.same({ json = { updated = 2 } }, res)
    local rows = unit.json.decode(db.calls[2].args[1])
    assert.same({ { id = 3, parent_id = NULL, sort_order = 1 },
      { id = 2, parent_id = 1, sort_order = 5 } }, rows)
    assert.equal("7", db.calls[2].args[2])
  end)

  it("answers 422 for a cycle, naming the item", function()
    db.reply({ MENUS })
    local e = http_error(reorder, req({ body = {
      { id = 1, parent_id = 3, sort_order = 0 } } }))
    assert.same({ ["items[1].parent_id"] = "would make a cycle" }, e.fields)
    assert.equal(1, #db.calls) -- nothing written
  end)

  it("answers 422 for missing and repeated menus", function()
    db.reply({ MENUS })
    local e = http_error(reorder, req({ body = { { id = 9, sort_order = 0 },
      { id = 4, parent_id = 8, sort_order = 0 }, { id = 4, sort_order = 1 } } }))
    assert.same({ ["items[1].id"] = "does not exist",
      ["items[2].parent_id"] = "does not exist", ["items[3].id"] = "is listed twice" },
      e.fields)
  end)
end)

describe("GET /api/v1/menus/tree", function()
  it("nests children under their parents in the order read", function()
    db.reply({ { { id = 2, parent_id = 1 }, { id = 1, parent_id = NULL },
      { id = 3, parent_id = 1 } } })
    local res = routes_of("menus")["/api/v1/menus/tree"].GET.handler(req())
    assert.same({ { id = 1, parent_id = NULL, children = {
      { id = 2, parent_id = 1, children = {} }, { id = 3, parent_id = 1, children = {} } } } },
      res.json)
  end)
end)

describe("the users routes", function()
  local users = routes_of("users")

  it("create a user with a lower-case email, a hash and all_members", function()
    db.reply({ { id = 11 } }, { 1 })
    local res = users["/api/v1/users"].POST.handler(req({ body = {
      email = "Ann@Example.COM", password = "long enough" } }))
    assert.same({ status = 201, json = { id = 11 } }, res)
    assert.matches("^INSERT INTO users %(username, email, password_hash, created_by, "
      .. "updated_by%)", db.calls[1].sql)
    assert.same({ "ann@example.com", "ann@example.com", "hash:long enough", "7", n = 4 },
      db.calls[1].args)
    assert.matches("all_members", db.calls[2].sql)
    assert.same({ 11, n = 1 }, db.calls[2].args)
  end)

  it("refuse a password that is missing, weak or the email", function()
    local create = users["/api/v1/users"].POST.handler
    local e = http_error(create, req({ body = { email = "a@x.test" } }))
    assert.same({ password = "is required" }, e.fields)
    e = http_error(create, req({ body = { email = "a@x.test", password = "short" } }))
    assert.same({ password = "must be at least 8 characters" }, e.fields)
    e = http_error(create, req({ body = { email = "a@x.test", password = "a@x.test" } }))
    assert.same({ password = "must not be the email or username" }, e.fields)
    assert.equal(0, #db.calls)
  end)

  it("refuse to delete the caller's own account", function()
    db.reply({ { id = 7, status = "active" } })
    local e = http_error(users["/api/v1/users/:id"].DELETE.handler,
      req({ params = { id = "7" } }))
    assert.same({ 409, "you cannot delete your own account" }, { e.status, e.message })
    assert.same({}, auth_calls)
  end)

  it("end a deleted user's sessions", function()
    -- the user, the caller's rank (superuser), the delete
    db.reply({ { id = 8, status = "active" } }, { { super = true, priority = 0 } }, { 1 })
    local res = users["/api/v1/users/:id"].DELETE.handler(req({ params = { id = "8" } }))
    assert.same({ status = 204 }, res)
    assert.same({ { "revoke_user", "8" } }, auth_calls)
  end)
end)

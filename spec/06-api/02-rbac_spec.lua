-- Roles, permissions and user groups (seed 002) in every isolation mode:
-- CRUD with the seed's field names as aliases, system roles and groups, the
-- 002 role and group flows end to end (a permission granted through a role
-- works at once, and stops working at once when taken away), and the
-- priority rule for granting roles.
local api = require "helpers.api"

api.suite(_ENV, "roles, permissions and groups API", "rbac", {}, function(t)
  local env, code, call = t.env, t.code, t.call

  -- The id of the object with this code in a list.
  local function id_of(list, wanted)
    for _, o in ipairs(call("GET", list .. "?limit=1000").json) do
      if o.code == wanted then
        return o.id
      end
    end
  end

  local function role_id(role_code)
    return id_of("/api/v1/roles", role_code)
  end

  local function permission_id(perm_code)
    return id_of("/api/v1/permissions", perm_code)
  end

  it("creates, reads, updates and deletes roles, seed 002 names included", function()
    local r = call("POST", "/api/v1/roles", { role_code = "custom_admin",
      role_name = "Custom Admin", priority = 75, role_type = "admin" })
    assert.equal(201, r.status, r.body)
    local role = r.json
    assert.equal("custom_admin", role.code)
    assert.equal("Custom Admin", role.name)
    assert.equal(75, role.priority)
    assert.is_false(role.is_system)
    assert.equal(409, call("POST", "/api/v1/roles", { code = "custom_admin",
      name = "Again" }).status)
    assert.equal(200, call("GET", "/api/v1/roles/" .. role.id).status)
    r = call("PATCH", "/api/v1/roles/" .. role.id, { role_name = "Renamed",
      description = "changed" })
    assert.equal(200, r.status, r.body)
    assert.equal("Renamed", r.json.name)
    assert.equal(204, call("DELETE", "/api/v1/roles/" .. role.id).status)
    assert.equal(404, call("GET", "/api/v1/roles/" .. role.id).status)
    assert.equal(404, call("DELETE", "/api/v1/roles/" .. role.id).status)
  end)

  it("answers 422 for bad role bodies", function()
    for _, body in ipairs({
      { name = "No code" },
      { code = "Bad Code", name = "x" },
      { code = "ok_code", name = "x", role_type = "god" },
      { code = "ok_code", name = "x", priority = -1 },
      { code = "ok_code", name = "x", priority = 1.5 },
      { role_code = "a_code", code = "b_code", name = "x" },
    }) do
      local r = call("POST", "/api/v1/roles", body)
      assert.equal(422, r.status, r.body)
      assert.is_table(r.json.fields)
    end
  end)

  it("keeps system roles: no delete, no new code, seeded permissions", function()
    local viewer = role_id("viewer")
    local r = call("DELETE", "/api/v1/roles/" .. viewer)
    assert.equal(409, r.status)
    assert.equal(409, call("PATCH", "/api/v1/roles/" .. viewer, { code = "watcher" }).status)
    assert.equal(409, call("POST", "/api/v1/roles/" .. viewer .. "/permissions",
      { permission_code = "user_delete" }).status)
    assert.equal(200, call("PATCH", "/api/v1/roles/" .. viewer,
      { description = "Read-only access" }).status)
    local perms = call("GET", "/api/v1/roles/" .. viewer .. "/permissions").json
    local codes = {}
    for _, p in ipairs(perms) do
      codes[#codes + 1] = p.code
    end
    table.sort(codes)
    assert.same({ "board_read", "category_read", "menu_read", "user_read" }, codes)
  end)

  it("lists, reads and creates permissions as {resource}_{action}", function()
    local id = permission_id("user_read")
    assert.not_nil(id)
    local r = call("GET", "/api/v1/permissions/" .. id)
    assert.equal("user", r.json.resource)
    assert.equal("read", r.json.action)
    r = call("POST", "/api/v1/permissions", { resource = "report", action = "read" })
    assert.equal(201, r.status, r.body)
    assert.equal("report_read", r.json.code)
    assert.equal("Read report", r.json.name)
    r = call("POST", "/api/v1/permissions", { permission_code = "report_manage",
      permission_name = "Manage reports", resource = "report", action = "manage" })
    assert.equal(201, r.status, r.body)
    assert.equal("Manage reports", r.json.name)
    assert.equal(409, call("POST", "/api/v1/permissions", { resource = "report",
      action = "read" }).status)
    r = call("POST", "/api/v1/permissions", { permission_code = "custom_action",
      resource = "user", action = "create" })
    assert.equal(422, r.status)
    assert.matches("user_create", r.json.fields.code)
    assert.equal(422, call("POST", "/api/v1/permissions", { resource = "report",
      action = "fly" }).status)
    assert.equal(404, call("GET", "/api/v1/permissions/999999").status)
    assert.equal(405, call("DELETE", "/api/v1/permissions/" .. id).status)
  end)

  it("runs the 002 role flow: a granted permission works at once, and stops", function()
    local token, uid = env:user(code)
    assert.equal(403, env:call("GET", "/api/v1/boards", { token = token }).status)

    local role = call("POST", "/api/v1/roles", { code = "board_reader",
      name = "Board reader", priority = 5 }).json
    local perm = permission_id("board_read")
    local r = call("POST", "/api/v1/roles/" .. role.id .. "/permissions",
      { permission_id = perm })
    assert.equal(201, r.status, r.body)
    assert.equal("board_read", r.json.code)
    assert.equal(409, call("POST", "/api/v1/roles/" .. role.id .. "/permissions",
      { permission_id = perm }).status)
    assert.equal(422, call("POST", "/api/v1/roles/" .. role.id .. "/permissions",
      { permission_id = 999999 }).status)
    assert.equal(1, #call("GET", "/api/v1/roles/" .. role.id .. "/permissions").json)

    r = call("POST", "/api/v1/users/" .. uid .. "/roles", { role_id = role.id })
    assert.equal(201, r.status, r.body)
    assert.equal("board_reader", r.json.code)
    assert.equal(409, call("POST", "/api/v1/users/" .. uid .. "/roles",
      { role_id = role.id }).status)
    local roles = call("GET", "/api/v1/users/" .. uid .. "/roles").json
    assert.equal(1, #roles)
    assert.equal(role.id, roles[1].id)
    local perms = call("GET", "/api/v1/users/" .. uid .. "/permissions").json
    assert.equal(1, #perms)
    assert.equal("board_read", perms[1].code)

    assert.equal(200, env:call("GET", "/api/v1/boards", { token = token }).status)
    -- taking the role away works at once
    assert.equal(204, call("DELETE", "/api/v1/users/" .. uid .. "/roles/" .. role.id).status)
    assert.equal(403, env:call("GET", "/api/v1/boards", { token = token }).status)
    assert.equal(404, call("DELETE", "/api/v1/users/" .. uid .. "/roles/" .. role.id).status)

    -- and so does taking the permission from the role
    assert.equal(201, call("POST", "/api/v1/users/" .. uid .. "/roles",
      { role_code = "board_reader" }).status)
    assert.equal(200, env:call("GET", "/api/v1/boards", { token = token }).status)
    assert.equal(204, call("DELETE", "/api/v1/roles/" .. role.id .. "/permissions/"
      .. perm).status)
    assert.equal(403, env:call("GET", "/api/v1/boards", { token = token }).status)
    assert.equal(404, call("DELETE", "/api/v1/roles/" .. role.id .. "/permissions/"
      .. perm).status)

    -- and deleting the role
    call("POST", "/api/v1/roles/" .. role.id .. "/permissions", { permission_id = perm })
    assert.equal(200, env:call("GET", "/api/v1/boards", { token = token }).status)
    assert.equal(204, call("DELETE", "/api/v1/roles/" .. role.id).status)
    assert.equal(403, env:call("GET", "/api/v1/boards", { token = token }).status)
    assert.same({}, call("GET", "/api/v1/users/" .. uid .. "/roles").json)
  end)

  it("grants manage as every action of its resource", function()
    local token, uid = env:user(code)
    local role = call("POST", "/api/v1/roles", { code = "board_boss", name = "Boards",
      priority = 6 }).json
    call("POST", "/api/v1/roles/" .. role.id .. "/permissions",
      { permission_code = "board_manage" })
    call("POST", "/api/v1/users/" .. uid .. "/roles", { role_id = role.id })
    local r = env:call("POST", "/api/v1/boards", { token = token,
      body = { code = "managed", name = "Managed" } })
    assert.equal(201, r.status, r.body)
    assert.equal(204, env:call("DELETE", "/api/v1/boards/" .. r.json.id,
      { token = token }).status)
    assert.equal(403, env:call("GET", "/api/v1/menus", { token = token }).status)
  end)

  it("lets nobody grant or revoke roles at or above their own priority", function()
    local boss = env:user(code, { "admin" })
    local _, uid = env:user(code)
    local _, peer = env:user(code, { "admin" })
    local function as_boss(method, path, body)
      return env:call(method, path, { token = boss, body = body })
    end
    local r = as_boss("POST", "/api/v1/users/" .. uid .. "/roles",
      { role_code = "admin" })
    assert.equal(403, r.status)
    assert.matches("priority", r.json.message)
    assert.equal(403, as_boss("POST", "/api/v1/users/" .. uid .. "/roles",
      { role_id = role_id("super_admin") }).status)
    assert.equal(201, as_boss("POST", "/api/v1/users/" .. uid .. "/roles",
      { role_code = "manager" }).status)
    assert.equal(204, as_boss("DELETE", "/api/v1/users/" .. uid .. "/roles/"
      .. role_id("manager")).status)
    assert.equal(403, as_boss("DELETE", "/api/v1/users/" .. peer .. "/roles/"
      .. role_id("admin")).status)
    -- nor make or raise roles to that rank
    assert.equal(403, as_boss("POST", "/api/v1/roles", { code = "over", name = "Over",
      priority = 50 }).status)
    local low = as_boss("POST", "/api/v1/roles", { code = "under", name = "Under",
      priority = 40 })
    assert.equal(201, low.status, low.body)
    assert.equal(403, as_boss("PATCH", "/api/v1/roles/" .. low.json.id,
      { priority = 90 }).status)
    assert.equal(403, as_boss("PATCH", "/api/v1/roles/" .. role_id("admin"),
      { name = "Mine now" }).status)
    -- the super_admin may
    assert.equal(201, call("POST", "/api/v1/users/" .. uid .. "/roles",
      { role_code = "admin" }).status)
  end)

  it("answers 404 and 422 around role assignment", function()
    local _, uid = env:user(code)
    assert.equal(404, call("POST", "/api/v1/users/999999/roles",
      { role_code = "viewer" }).status)
    local r = call("POST", "/api/v1/users/" .. uid .. "/roles", { role_code = "nope" })
    assert.equal(422, r.status)
    assert.is_string(r.json.fields.role_code)
    assert.equal(422, call("POST", "/api/v1/users/" .. uid .. "/roles", {}).status)
    assert.equal(422, call("POST", "/api/v1/users/" .. uid .. "/roles",
      { role_id = "1" }).status)
    assert.equal(404, call("DELETE", "/api/v1/users/" .. uid .. "/roles/999999").status)
    assert.equal(404, call("GET", "/api/v1/roles/999999/permissions").status)
  end)

  it("runs the 002 group flow", function()
    local _, uid = env:user(code)
    local r = call("POST", "/api/v1/user-groups", { group_code = "gold_members",
      group_name = "Gold Members", tenant_id = env.tenants[code].id, priority = 30 })
    assert.equal(201, r.status, r.body)
    local group = r.json
    assert.equal("custom", group.group_type)
    assert.equal(409, call("POST", "/api/v1/user-groups", { code = "gold_members",
      name = "Again" }).status)
    r = call("POST", "/api/v1/user-groups/" .. group.id .. "/members", { user_id = uid })
    assert.equal(201, r.status, r.body)
    assert.equal(uid, r.json.id)
    assert.equal(409, call("POST", "/api/v1/user-groups/" .. group.id .. "/members",
      { user_id = uid }).status)
    assert.equal(422, call("POST", "/api/v1/user-groups/" .. group.id .. "/members",
      { user_id = 999999 }).status)
    local members = call("GET", "/api/v1/user-groups/" .. group.id .. "/members").json
    assert.equal(1, #members)
    assert.equal(uid, members[1].id)
    local codes = {}
    for _, g in ipairs(call("GET", "/api/v1/users/" .. uid .. "/groups").json) do
      codes[g.code] = true
    end
    assert.same({ all_members = true, gold_members = true }, codes)
    r = call("PATCH", "/api/v1/user-groups/" .. group.id, { group_name = "Gold" })
    assert.equal("Gold", r.json.name)
    assert.equal(204, call("DELETE", "/api/v1/user-groups/" .. group.id .. "/members/"
      .. uid).status)
    assert.equal(404, call("DELETE", "/api/v1/user-groups/" .. group.id .. "/members/"
      .. uid).status)
    assert.same({}, call("GET", "/api/v1/user-groups/" .. group.id .. "/members").json)
    assert.equal(204, call("DELETE", "/api/v1/user-groups/" .. group.id).status)
    assert.equal(404, call("GET", "/api/v1/user-groups/" .. group.id).status)
  end)

  it("keeps system groups and checks group permissions", function()
    local all
    for _, g in ipairs(call("GET", "/api/v1/user-groups").json) do
      if g.code == "all_members" then
        all = g
      end
    end
    assert.equal("system", all.group_type)
    assert.equal(409, call("DELETE", "/api/v1/user-groups/" .. all.id).status)
    assert.equal(409, call("PATCH", "/api/v1/user-groups/" .. all.id,
      { code = "everyone" }).status)
    local viewer = env:user(code, { "viewer" })
    assert.equal(403, env:call("GET", "/api/v1/user-groups", { token = viewer }).status)
    assert.equal(401, env:call("GET", "/api/v1/user-groups", { tenant = code }).status)
    assert.equal(422, call("POST", "/api/v1/user-groups", { name = "No code" }).status)
    assert.equal(422, call("GET", "/api/v1/user-groups?limit=5000").status)
  end)
end)

-- Nobody hands out what they do not hold, in every isolation mode: granting
-- a permission to a role, or a role to a user, needs the caller to hold
-- every permission involved (superusers aside). The attack this stops: an
-- admin without permission_create makes a low role, gives it
-- permission_create, takes the role and creates permissions.
local api = require "helpers.api"

api.suite(_ENV, "grants", "grants", {}, function(t)
  local env, code, call = t.env, t.code, t.call
  local admin, admin_id -- seed role admin (priority 50): no permission_create

  setup(function()
    admin, admin_id = env:user(code, { "admin" })
  end)

  local function as_admin(method, path, body)
    return call(method, path, body, admin)
  end

  local function new_role(role_code)
    local r = as_admin("POST", "/api/v1/roles", { code = role_code, name = role_code,
      priority = 10 })
    assert.equal(201, r.status, r.body)
    return r.json.id
  end

  it("refuses an admin who would give a role a permission it does not hold", function()
    local role = new_role("escalator")
    local r = as_admin("POST", "/api/v1/roles/" .. role .. "/permissions",
      { permission_code = "permission_create" })
    assert.equal(403, r.status, r.body)
    assert.equal("forbidden", r.json.error)
    assert.matches("permission_create", r.json.message)
    -- the role holds nothing, so taking it is allowed and grants nothing
    assert.equal(201, as_admin("POST", "/api/v1/users/" .. admin_id .. "/roles",
      { role_code = "escalator" }).status)
    r = as_admin("POST", "/api/v1/permissions", { resource = "secret", action = "read" })
    assert.equal(403, r.status, r.body)
    assert.equal("0", env:sql(code, "SELECT count(*) FROM permissions "
      .. "WHERE code = 'secret_read'"))
  end)

  it("refuses a manage permission the admin holds only some actions of", function()
    local role = new_role("tenant_keeper")
    -- admin holds tenant_read and tenant_update, not tenant_manage
    assert.equal(403, as_admin("POST", "/api/v1/roles/" .. role .. "/permissions",
      { permission_code = "tenant_manage" }).status)
    assert.equal(403, as_admin("POST", "/api/v1/roles/" .. role .. "/permissions",
      { permission_code = "tenant_delete" }).status)
    assert.equal(201, as_admin("POST", "/api/v1/roles/" .. role .. "/permissions",
      { permission_code = "tenant_read" }).status)
  end)

  it("refuses to assign a role holding a permission the admin does not hold", function()
    -- a low role that already holds permission_create (made directly)
    env:sql(code, "INSERT INTO roles (code, name, priority) VALUES ('loaded', 'Loaded', 5); "
      .. "INSERT INTO role_permissions (role_id, permission_id) SELECT r.id, p.id "
      .. "FROM roles r, permissions p WHERE r.code = 'loaded' "
      .. "AND p.code IN ('permission_create', 'user_read')")
    local _, other = env:user(code)
    for _, target in ipairs({ admin_id, other }) do
      local r = as_admin("POST", "/api/v1/users/" .. target .. "/roles",
        { role_code = "loaded" })
      assert.equal(403, r.status, r.body)
      assert.matches("permission_create", r.json.message)
    end
    assert.equal("0", env:sql(code, "SELECT count(*) FROM user_roles ur JOIN roles r "
      .. "ON r.id = ur.role_id WHERE r.code = 'loaded'"))
  end)

  it("lets an admin grant what it holds, manage covering every action", function()
    local role = new_role("helper")
    for _, perm in ipairs({ "user_read", "user_manage", "board_delete" }) do
      local r = as_admin("POST", "/api/v1/roles/" .. role .. "/permissions",
        { permission_code = perm })
      assert.equal(201, r.status, r.body)
    end
    local _, other = env:user(code)
    assert.equal(201, as_admin("POST", "/api/v1/users/" .. other .. "/roles",
      { role_id = role }).status)
  end)

  it("lets a superuser grant anything", function()
    local r = call("POST", "/api/v1/roles", { code = "by_super", name = "By super",
      priority = 10 })
    assert.equal(201, r.status, r.body)
    assert.equal(201, call("POST", "/api/v1/roles/" .. r.json.id .. "/permissions",
      { permission_code = "permission_create" }).status)
    local _, other = env:user(code)
    assert.equal(201, call("POST", "/api/v1/users/" .. other .. "/roles",
      { role_code = "by_super" }).status)
  end)
end)

-- Users of a tenant (seed 002): CRUD with soft delete, the caller's own
-- profile at /users/me, a user's roles (assigned under the priority rule),
-- the permissions and groups a user has, and the admin alias
-- /api/v1/tenants/:tenant_id/users.
--
-- Passwords are argon2id hashes that no answer carries; a new password, a
-- disabled account or a deleted user ends the user's sessions. Conventions
-- (ids, lists, bodies, errors) are lib/crud's; the rank rules lib/guards'.
local auth = require "rt.auth"
local rt = require "rt"
local crud = require "lib.crud"
local guards = require "lib.guards"
local resources = require "lib.resources"

local NULL = rt.null
local users, roles = resources.users, resources.roles

local PASSWORD = crud.text(256, 1)

-- Checks a new password against the policy (422 on a problem).
local function password_policy(pw, email, username, field)
  local problem = auth.password_problem(pw)
  if not problem and (pw == email or pw == username) then
    problem = "must not be the email or username"
  end
  if problem then
    crud.invalid(field or "password", problem)
  end
end

local function create_user(req)
  local values = crud.input(req, users, true)
  local pw = req.json().password
  if pw == nil then
    crud.invalid("password", "is required")
  end
  values.email = values.email:lower()
  values.username = values.username or values.email
  guards.superuser_flag(req, values)
  password_policy(pw, values.email, values.username)
  local user = crud.insert(req, users, values,
    { { "password_hash", auth.hash_password(pw) } })
  crud.exec("group membership", [[
    INSERT INTO user_group_members (user_id, group_id)
    SELECT $1, id FROM user_groups WHERE code = 'all_members'
    ON CONFLICT DO NOTHING]], user.id)
  return { status = 201, json = user }
end

local function update_user(req)
  local id = crud.id_param(req, "id", "user")
  local values = crud.input(req, users, false)
  local pw = req.json().password
  local current = crud.fetch(users, id)
  guards.user(req, id)
  guards.superuser_flag(req, values)
  values.email = values.email and values.email:lower()
  -- a new address is not verified (unless this request says it is)
  if values.email and values.email ~= current.email and values.email_verified == nil then
    values.email_verified = false
  end
  local extra
  if pw ~= nil then
    password_policy(pw, values.email or current.email, values.username or current.username)
    extra = { { "password_hash", auth.hash_password(pw) } }
  end
  local user = crud.update(req, users, id, values, extra)
  local disabled = user.status ~= "active" and current.status == "active"
  if disabled or pw ~= nil then
    crud.must(auth.revoke_user(tostring(id)))
  end
  if user.is_superuser ~= current.is_superuser or user.status ~= current.status then
    crud.must(auth.rbac_changed(tostring(id))) -- what the user may do changed
  end
  return { json = user }
end

-- ---- the caller's own profile: any authenticated user of the tenant -----------

local ME_SQL = ("SELECT %s FROM users WHERE id = $1 AND deleted_at IS NULL")
  :format(users.columns)

local function me(req)
  local user = crud.query_one("user", ME_SQL, req.user.id)
  if not user then
    rt.error(401, "unauthenticated", "invalid or expired token")
  end
  return user
end

local ME_BODY = {
  type = "object", additionalProperties = false,
  properties = {
    username = crud.text(100, 1), email = { type = "string", format = "email" },
    full_name = crud.text(200), phone = crud.text(40, nil, true), password = PASSWORD,
    current_password = crud.text(256),
  },
}

local function update_me(req)
  local body, current = req.json(), me(req)
  local values = {
    username = body.username, email = body.email and body.email:lower(),
    full_name = body.full_name, phone = body.phone,
  }
  local extra = {}
  if values.email and values.email ~= current.email then
    extra[1] = { "email_verified", false } -- a new address is not verified
  end
  if body.password ~= nil then
    if body.current_password == nil then
      crud.invalid("current_password", "is required to change the password")
    end
    local stored = crud.query_one("user", "SELECT password_hash FROM users WHERE id = $1",
      req.user.id)
    local hash = stored.password_hash ~= NULL and stored.password_hash or nil
    if not auth.verify_password(body.current_password, hash) then
      crud.invalid("current_password", "is not correct")
    end
    password_policy(body.password, values.email or current.email,
      values.username or current.username)
    extra[#extra + 1] = { "password_hash", auth.hash_password(body.password) }
  end
  local user = crud.update(req, users, current.id, values, extra)
  if body.password ~= nil then
    crud.must(auth.revoke_user(req.user.id))
  end
  return { json = user }
end

-- One route entry serves PUT and PATCH.
local UPDATE_ME = crud.route {
  offload = true, tags = { "users" }, body = ME_BODY,
  summary = "Update your own profile; a new password needs current_password and "
    .. "ends all your sessions",
  handler = update_me,
}

-- ---- what a user has: roles, permissions, groups ------------------------------

local user_roles = {
  owner = users, target = roles, what = "role assignment", tags = { "users", "roles" },
  param = "role_id", by_code = "role_code", stamp = "assigned_at",
  list = "SELECT r.id, r.code, r.name, r.description, r.priority, r.role_type, "
    .. "r.is_system, ur.created_at AS assigned_at FROM user_roles ur JOIN roles r "
    .. "ON r.id = ur.role_id WHERE ur.user_id = $1 ORDER BY r.priority DESC, r.id",
  insert = "INSERT INTO user_roles (user_id, role_id, created_by) VALUES ($1, $2, $3) "
    .. "RETURNING created_at",
  delete = "DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2",
  guard = function(req, _, role)
    guards.role(req, role)
  end,
  grant = function(req, _, role)
    local codes = {}
    for _, p in ipairs(crud.query("role permission", [[
      SELECT p.code FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
      WHERE rp.role_id = $1 ORDER BY p.code]], role.id)) do
      codes[#codes + 1] = p.code
    end
    guards.grant(req, codes, "role " .. role.code)
  end,
  changed = function(_, user)
    crud.must(auth.rbac_changed(tostring(user.id)))
  end,
}

local user_permissions = {
  owner = users, what = "permission", tags = { "users", "permissions" },
  list = "SELECT DISTINCT " .. resources.PERMISSION_COLUMNS .. " FROM user_roles ur "
    .. "JOIN role_permissions rp ON rp.role_id = ur.role_id "
    .. "JOIN permissions p ON p.id = rp.permission_id WHERE ur.user_id = $1 ORDER BY p.code",
}

local user_groups = {
  owner = users, what = "user group", tags = { "users", "user-groups" },
  list = "SELECT g.id, g.code, g.name, g.description, g.priority, g.group_type, "
    .. "m.created_at AS joined_at FROM user_group_members m JOIN user_groups g "
    .. "ON g.id = m.group_id WHERE m.user_id = $1 ORDER BY g.priority DESC, g.id",
}

return {
  ["/api/v1/users"] = {
    GET = crud.list_route(users, { permission = "user_read" }),
    POST = crud.route {
      permission = "user_create", tags = { "users" }, offload = true,
      summary = "Create a user (argon2id password; joins all_members)",
      body = crud.body_schema(users, true, { password = PASSWORD }),
      handler = create_user,
    },
  },
  ["/api/v1/users/:id"] = {
    GET = crud.get_route(users, { permission = "user_read" }),
    PATCH = crud.route {
      permission = "user_update", tags = { "users" }, offload = true,
      summary = "Update a user (status inactive/suspended or a new "
        .. "password ends the user's sessions)",
      body = crud.body_schema(users, false, { password = PASSWORD }),
      handler = update_user,
    },
    DELETE = crud.delete_route(users, {
      permission = "user_delete",
      before = function(req, current)
        if tostring(current.id) == req.user.id then
          crud.conflict("you cannot delete your own account")
        end
        guards.user(req, current.id)
      end,
      after = function(_, current)
        crud.must(auth.revoke_user(tostring(current.id)))
      end,
    }),
  },
  ["/api/v1/users/me"] = {
    GET = crud.route {
      tags = { "users" }, summary = "Your own profile",
      handler = function(req)
        return { json = me(req) }
      end,
    },
    PUT = UPDATE_ME,
    PATCH = UPDATE_ME,
  },
  ["/api/v1/users/:id/roles"] = {
    GET = crud.links_route(user_roles, { permission = "user_read",
      summary = "A user's roles" }),
    POST = crud.link_route(user_roles, { permission = "user_update",
      summary = "Assign a role (only below your own highest priority unless superuser)" }),
  },
  ["/api/v1/users/:id/roles/:role_id"] = {
    DELETE = crud.unlink_route(user_roles, { permission = "user_update",
      summary = "Remove a role from a user (same priority rule as assigning)" }),
  },
  ["/api/v1/users/:id/permissions"] = {
    GET = crud.links_route(user_permissions, { permission = "user_read",
      summary = "The permissions a user holds through roles" }),
  },
  ["/api/v1/users/:id/groups"] = {
    GET = crud.links_route(user_groups, { permission = "user_read",
      summary = "The groups a user belongs to" }),
  },
  ["/api/v1/tenants/:tenant_id/users"] = {
    GET = crud.list_route(users, { permission = "user_read", scope = "any",
      summary = "List the tenant's users (admin alias)" }),
  },
}

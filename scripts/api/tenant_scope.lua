-- The tenant-scope API of seed 002: users (and the caller's own profile at
-- /users/me), roles and their permissions, permissions, user groups and their
-- members, menus (flat, tree, reordering) and boards, plus the 002 admin
-- aliases /api/v1/tenants/:tenant_id/{users,user-groups,menus,boards}.
--
-- One file on purpose: route files cannot require each other yet, and every
-- resource here is served by the small CRUD engine below (list with
-- skip/limit, get, create, patch, delete from a field table). Once scripts can
-- require files under scripts/, the engine moves to a module and each
-- resource to its own file.
--
-- The runtime has already resolved the tenant, scoped the transaction to it
-- (RLS hides other tenants' rows: they are 404 like missing ones) and
-- checked the route's permission. Client input reaches SQL only as $n
-- parameters; column names come from the field tables here, never from the
-- request. Database failures become 500/503/504 (logged, rolled back);
-- unique violations 409, foreign key and check violations 422.
local db = require "rt.db"
local auth = require "rt.auth"
local json = require "rt.json"
local rt = require "rt"

local NULL = rt.null
local API = "/api/v1"

-- ---- errors -----------------------------------------------------------------

local DbFailure = {}

-- Raises a 422 naming every field in fields (a no-op when it is empty).
local function invalid_fields(fields)
  local first
  for k in pairs(fields) do
    if not first or k < first then
      first = k
    end
  end
  if first then
    rt.error(422, "validation_failed", first .. " " .. fields[first], fields)
  end
end

local function invalid(field, problem)
  invalid_fields({ [field] = problem })
end

local function not_found(what)
  rt.error(404, "not_found", what .. " not found")
end

local function forbidden(message)
  rt.error(403, "forbidden", message)
end

local function conflict(message, fields)
  rt.error(409, "conflict", message, fields)
end

-- The column a unique violation names ("users_tenant_id_email_key" -> email),
-- as a fields table; nil for keys over several columns.
local function taken(message)
  local col = tostring(message):match('"[%w_]-_tenant_id_([%w_]+)_key"')
  if col and not col:find("_id", 1, true) then
    return { [col] = "is already taken" }
  end
end

-- Runs fn(sql, ...) and maps failures: 23505 -> 409, 23503/23514 -> 422,
-- anything else raises DbFailure, which the route wrapper turns into
-- `nil, err` (500 or 503/504, logged, rolled back).
local function run(fn, what, sql, ...)
  local res, err, err_t = fn(sql, ...)
  if err == nil then
    return res
  end
  local state = err_t and err_t.sqlstate
  if state == "23505" then
    local fields = taken(err_t.message or err)
    conflict(what .. " already exists" .. (fields and " (" .. next(fields) .. ")" or ""),
      fields)
  elseif state == "23503" then
    rt.error(422, "validation_failed", what .. " refers to something that does not exist")
  elseif state == "23514" then
    rt.error(422, "validation_failed", what .. " breaks a rule of the data model")
  end
  error(setmetatable({ message = err }, DbFailure), 0)
end

local function query(what, sql, ...)
  return run(db.query, what, sql, ...)
end

local function query_one(what, sql, ...)
  return run(db.query_one, what, sql, ...)
end

local function exec(what, sql, ...)
  return run(db.exec, what, sql, ...)
end

-- A route table entry: scope tenant unless given, and a handler whose
-- database failures come back as `nil, err`.
local function route(spec)
  local handler = spec.handler
  spec.scope = spec.scope or "tenant"
  spec.handler = function(req)
    local ok, res = pcall(handler, req)
    if ok then
      return res
    end
    if getmetatable(res) == DbFailure then
      return nil, res.message
    end
    error(res, 0)
  end
  return spec
end

-- ---- request helpers --------------------------------------------------------

-- A path parameter that must be an id; anything else names nothing (404).
local function id_param(req, name, what)
  local s = req.params[name]
  if not s or not s:find("^[1-9]%d*$") or #s > 18 then
    not_found(what)
  end
  return math.tointeger(tonumber(s))
end

-- skip and limit from the query string: defaults 0 and 100, limit at most
-- 1000; anything else is a 422 naming the parameter.
local function page(req)
  local q, fields = req.query or {}, {}
  local function int(name, default, min, max)
    local v = q[name]
    if v == nil then
      return default
    end
    local n = v:find("^%d+$") and #v <= 9 and math.tointeger(tonumber(v))
    if not n then
      fields[name] = "must be a whole number"
    elseif n < min or n > max then
      fields[name] = ("must be from %d to %d"):format(min, max)
    end
    return n or default
  end
  local skip = int("skip", 0, 0, 1000000000)
  local limit = int("limit", 100, 1, 1000)
  invalid_fields(fields)
  return limit, skip
end

-- The caller's user id for the audit columns: a tenant user's id, NULL for a
-- platform token acting through an alias route.
local function actor(req)
  local u = req.user
  if u and u.scope == "tenant" and u.id:find("^%d+$") then
    return u.id
  end
  return NULL
end

-- ---- ranks: priority rules --------------------------------------------------

local RANK_SQL = [[
  SELECT u.is_superuser OR coalesce(bool_or(r.code = 'super_admin'), false) AS super,
         coalesce(max(r.priority), 0) AS priority
  FROM users u
  LEFT JOIN user_roles ur ON ur.user_id = u.id
  LEFT JOIN roles r ON r.id = ur.role_id
  WHERE u.id = $1 AND u.deleted_at IS NULL
  GROUP BY u.id, u.is_superuser]]

-- { super, priority } of a user: superusers (is_superuser or super_admin)
-- and the highest priority of the user's roles.
local function rank_of(id)
  return query_one("user", RANK_SQL, id) or { super = false, priority = 0 }
end

-- The caller's rank (once per request). A platform token only reaches the
-- read-only alias routes, after the runtime found it a superuser.
local function caller(req)
  if not req.rank then
    req.rank = req.user.scope == "tenant" and rank_of(req.user.id)
      or { super = true, priority = math.maxinteger }
  end
  return req.rank
end

-- A non-superuser may only grant, revoke or change roles below their own
-- highest priority, and never super_admin.
local function guard_role(req, role)
  local me = caller(req)
  if me.super then
    return
  end
  if role.code == "super_admin" then
    forbidden("only superusers may grant, revoke or change super_admin")
  end
  if role.priority >= me.priority then
    forbidden(("role %s has priority %d, at or above your highest role (%d)")
      :format(role.code, role.priority, me.priority))
  end
end

-- A non-superuser may only change or delete users who rank below them.
local function guard_user(req, id)
  local me = caller(req)
  if me.super then
    return
  end
  local them = rank_of(id)
  if them.super or them.priority >= me.priority then
    forbidden("this user is a superuser or holds a role at or above yours")
  end
end

-- ---- the CRUD engine --------------------------------------------------------
--
-- A resource: table, what (for messages), columns (the SELECT list; never
-- password_hash), order, soft (deleted_at), audit (created_by/updated_by),
-- and fields: { name, schema, alias = seed 002 name, required, create_only,
-- json (a jsonb column) }.

-- The body schema: the fields under their own names and their aliases, plus
-- tenant_id, which seed clients send (it must name this request's tenant).
local function body_schema(res, create, extra)
  local props = { tenant_id = { type = "integer", minimum = 1 } }
  for _, f in ipairs(res.fields) do
    if create or not f.create_only then
      props[f[1]] = f[2]
      if f.alias then
        props[f.alias] = f[2]
      end
    end
  end
  for k, v in pairs(extra or {}) do
    props[k] = v
  end
  return { type = "object", additionalProperties = false, properties = props }
end

-- The validated body as { field = value } under the fields' own names.
local function input(req, res, create)
  local body, values, fields = req.json(), {}, {}
  if body.tenant_id ~= nil and body.tenant_id ~= req.tenant.id then
    fields.tenant_id = "must be the tenant of this request"
  end
  for _, f in ipairs(res.fields) do
    local name = f[1]
    local v = body[name]
    if f.alias and body[f.alias] ~= nil then
      if v ~= nil and v ~= body[f.alias] then
        fields[f.alias] = "conflicts with " .. name
      end
      v = body[f.alias]
    end
    if create and f.required and v == nil then
      fields[name] = "is required"
    end
    if create or not f.create_only then
      values[name] = v
    end
  end
  invalid_fields(fields)
  return values
end

local function live(res)
  return res.soft and " AND deleted_at IS NULL" or ""
end

local function list(req, res, where, ...)
  local limit, skip = page(req)
  local args = table.pack(...)
  local n = args.n
  local sql = ("SELECT %s FROM %s WHERE true%s%s ORDER BY %s LIMIT $%d OFFSET $%d")
    :format(res.columns, res.table, live(res), where or "", res.order, n + 1, n + 2)
  args[n + 1], args[n + 2] = limit, skip
  return query(res.what, sql, table.unpack(args, 1, n + 2))
end

local function fetch(res, id)
  local row = query_one(res.what, ("SELECT %s FROM %s WHERE id = $1%s")
    :format(res.columns, res.table, live(res)), id)
  if not row then
    not_found(res.what)
  end
  return row
end

-- Appends a parameter; returns its placeholder.
local function param(args, v, cast)
  args[#args + 1] = v
  return "$" .. #args .. (cast or "")
end

-- INSERTs values (fields of res) plus extra { {column, value}, ... }.
local function insert(req, res, values, extra)
  local cols, marks, args = {}, {}, {}
  for _, f in ipairs(res.fields) do
    local v = values[f[1]]
    if v ~= nil then
      cols[#cols + 1] = f[1]
      marks[#marks + 1] = f.json and param(args, json.encode(v), "::jsonb")
        or param(args, v)
    end
  end
  for _, kv in ipairs(extra or {}) do
    cols[#cols + 1] = kv[1]
    marks[#marks + 1] = param(args, kv[2])
  end
  if res.audit then
    local who = param(args, actor(req))
    cols[#cols + 1], marks[#marks + 1] = "created_by", who
    cols[#cols + 1], marks[#marks + 1] = "updated_by", who
  end
  return query_one(res.what, ("INSERT INTO %s (%s) VALUES (%s) RETURNING %s")
    :format(res.table, table.concat(cols, ", "), table.concat(marks, ", "), res.columns),
    table.unpack(args, 1, #args))
end

-- UPDATEs the given values (and extra columns) of a live row; 404 when gone.
local function update(req, res, id, values, extra)
  local sets, args = {}, { id }
  for _, f in ipairs(res.fields) do
    local v = values[f[1]]
    if v ~= nil and not f.create_only then
      sets[#sets + 1] = f[1] .. " = "
        .. (f.json and param(args, json.encode(v), "::jsonb") or param(args, v))
    end
  end
  for _, kv in ipairs(extra or {}) do
    sets[#sets + 1] = kv[1] .. " = " .. param(args, kv[2])
  end
  if res.audit then
    sets[#sets + 1] = "updated_at = now()"
    sets[#sets + 1] = "updated_by = " .. param(args, actor(req))
  end
  if #sets == 0 then
    return fetch(res, id)
  end
  local row = query_one(res.what, ("UPDATE %s SET %s WHERE id = $1%s RETURNING %s")
    :format(res.table, table.concat(sets, ", "), live(res), res.columns),
    table.unpack(args, 1, #args))
  if not row then
    not_found(res.what)
  end
  return row
end

-- Soft delete (deleted_at) or a real one; 404 when already gone.
local function remove(req, res, id)
  local n
  if res.soft then
    n = exec(res.what, ("UPDATE %s SET deleted_at = now(), updated_at = now(), "
      .. "updated_by = $2%s WHERE id = $1 AND deleted_at IS NULL")
      :format(res.table, res.table == "users" and ", status = 'deleted'" or ""),
      id, actor(req))
  else
    n = exec(res.what, ("DELETE FROM %s WHERE id = $1"):format(res.table), id)
  end
  if n == 0 then
    not_found(res.what)
  end
end

-- Routes for one resource at API .. path: list and create, get, patch and
-- delete by id. hooks (optional, all take req): create(values),
-- update(current, values), delete(current), deleted(current).
local function crud(routes, res, path, perm, hooks)
  hooks = hooks or {}
  local tags = { res.tag }
  routes[API .. path] = {
    GET = route {
      permission = perm .. "_read", tags = tags, summary = "List " .. res.plural,
      handler = function(req)
        return { json = list(req, res) }
      end,
    },
    POST = route {
      permission = perm .. "_create", tags = tags, summary = "Create a " .. res.what,
      body = body_schema(res, true),
      handler = function(req)
        local values = input(req, res, true)
        if hooks.create then
          hooks.create(req, values)
        end
        return { status = 201, json = insert(req, res, values) }
      end,
    },
  }
  local by_id = {
    GET = route {
      permission = perm .. "_read", tags = tags, summary = "Get a " .. res.what,
      handler = function(req)
        return { json = fetch(res, id_param(req, "id", res.what)) }
      end,
    },
    DELETE = route {
      permission = perm .. "_delete", tags = tags,
      summary = "Delete a " .. res.what .. (res.soft and " (soft)" or ""),
      handler = function(req)
        local id = id_param(req, "id", res.what)
        local current = fetch(res, id)
        if hooks.delete then
          hooks.delete(req, current)
        end
        remove(req, res, id)
        if hooks.deleted then
          hooks.deleted(req, current)
        end
        return { status = 204 }
      end,
    },
  }
  if not res.read_only then
    by_id.PATCH = route {
      permission = perm .. "_update", tags = tags, summary = "Update a " .. res.what,
      body = body_schema(res, false),
      handler = function(req)
        local id = id_param(req, "id", res.what)
        local values = input(req, res, false)
        local current = fetch(res, id)
        if hooks.update then
          hooks.update(req, current, values)
        end
        return { json = update(req, res, id, values) }
      end,
    }
  end
  routes[API .. path .. "/:id"] = by_id
  return routes[API .. path], by_id
end

-- A GET route under /api/v1/tenants/:tenant_id (the 002 admin aliases):
-- reachable with a token of that tenant or a platform superuser's token.
local function alias(routes, path, spec)
  routes[API .. "/tenants/:tenant_id" .. path] = {
    GET = route {
      scope = "any", permission = spec.permission, tags = spec.tags,
      summary = spec.summary .. " (admin alias)", handler = spec.handler,
    },
  }
end

-- ---- resources --------------------------------------------------------------

local function text(max, min, nullable)
  return { type = "string", minLength = min, maxLength = max, nullable = nullable }
end

local CODE = { type = "string", format = "code" }
local PRIORITY = { type = "integer", minimum = 0, maximum = 1000000 }
local AUDIT = "created_at, updated_at, created_by, updated_by"

local users = {
  table = "users", what = "user", plural = "users", tag = "users", soft = true,
  audit = true, order = "id",
  columns = "id, username, email, full_name, phone, status, is_superuser, "
    .. "email_verified, last_login_at, " .. AUDIT,
  fields = {
    { "username", text(100, 1) },
    { "email", { type = "string", format = "email" }, required = true },
    { "full_name", text(200) },
    { "phone", text(40, nil, true) },
    { "status", { type = "string", enum = { "active", "inactive", "suspended" } } },
    { "is_superuser", { type = "boolean" } },
    { "email_verified", { type = "boolean" } },
  },
}

local roles = {
  table = "roles", what = "role", plural = "roles", tag = "roles", audit = true,
  order = "priority DESC, id",
  columns = "id, code, name, description, priority, role_type, is_system, " .. AUDIT,
  fields = {
    { "code", CODE, alias = "role_code", required = true },
    { "name", text(100, 1), alias = "role_name", required = true },
    { "description", text(1000) },
    { "priority", PRIORITY },
    { "role_type", { type = "string", enum = { "admin", "user", "both" } } },
  },
}

local permissions = {
  table = "permissions", what = "permission", plural = "permissions",
  tag = "permissions", order = "code", read_only = true,
  columns = "id, code, name, resource, action, description, created_at",
  fields = {
    { "code", CODE, alias = "permission_code" },
    { "name", text(100, 1), alias = "permission_name" },
    { "resource", CODE, required = true },
    { "action", { type = "string",
      enum = { "create", "read", "update", "delete", "manage" } }, required = true },
    { "description", text(1000) },
  },
}

local groups = {
  table = "user_groups", what = "user group", plural = "user groups",
  tag = "user-groups", audit = true, order = "priority DESC, id",
  columns = "id, code, name, description, priority, group_type, " .. AUDIT,
  fields = {
    { "code", CODE, alias = "group_code", required = true },
    { "name", text(100, 1), alias = "group_name", required = true },
    { "description", text(1000) },
    { "priority", PRIORITY },
  },
}

local menus = {
  table = "menus", what = "menu", plural = "menus", tag = "menus", audit = true,
  order = "parent_id NULLS FIRST, sort_order, id",
  columns = "id, parent_id, code, name, url, icon, sort_order, is_visible, "
    .. "permission, " .. AUDIT,
  fields = {
    { "parent_id", { type = "integer", minimum = 1, nullable = true } },
    { "code", CODE, alias = "menu_code", required = true },
    { "name", text(100, 1), alias = "menu_name", required = true },
    { "url", text(500, nil, true), alias = "menu_url" },
    { "icon", text(100, nil, true), alias = "menu_icon" },
    { "sort_order", { type = "integer", minimum = -1000000, maximum = 1000000 },
      alias = "display_order" },
    { "is_visible", { type = "boolean" } },
    { "permission", { type = "string", format = "code", nullable = true } },
  },
}

local boards = {
  table = "boards", what = "board", plural = "boards", tag = "boards", soft = true,
  audit = true, order = "id",
  columns = "id, code, name, description, settings, is_active, " .. AUDIT,
  fields = {
    { "code", CODE, alias = "board_code", required = true },
    { "name", text(100, 1), alias = "board_name", required = true },
    { "description", text(2000) },
    { "settings", { type = "object" }, json = true },
    { "is_active", { type = "boolean" } },
  },
}

local routes = {}

-- ---- users ------------------------------------------------------------------

local PASSWORD = text(256, 1)

-- Checks a new password against the policy (422 on a problem).
local function password_policy(pw, email, username, field)
  local problem = auth.password_problem(pw)
  if not problem and (pw == email or pw == username) then
    problem = "must not be the email or username"
  end
  if problem then
    invalid(field or "password", problem)
  end
end

local function only_superusers_grant_superuser(req, values)
  if values.is_superuser ~= nil and not caller(req).super then
    forbidden("only superusers may change is_superuser")
  end
end

local function live_user(req, name)
  return fetch(users, id_param(req, name or "id", "user"))
end

local list_users, user_by_id = crud(routes, users, "/users", "user", {
  delete = function(req, current)
    if tostring(current.id) == req.user.id then
      conflict("you cannot delete your own account")
    end
    guard_user(req, current.id)
  end,
  deleted = function(_, current)
    auth.revoke_user(tostring(current.id))
  end,
})

list_users.POST.offload = true
list_users.POST.body = body_schema(users, true, { password = PASSWORD })
list_users.POST.summary = "Create a user (argon2id password; joins all_members)"
list_users.POST.handler = route {
  handler = function(req)
    local values = input(req, users, true)
    local pw = req.json().password
    if pw == nil then
      invalid("password", "is required")
    end
    values.email = values.email:lower()
    values.username = values.username or values.email
    only_superusers_grant_superuser(req, values)
    password_policy(pw, values.email, values.username)
    local user = insert(req, users, values,
      { { "password_hash", auth.hash_password(pw) } })
    exec("group membership", [[
      INSERT INTO user_group_members (user_id, group_id)
      SELECT $1, id FROM user_groups WHERE code = 'all_members'
      ON CONFLICT DO NOTHING]], user.id)
    return { status = 201, json = user }
  end,
}.handler

user_by_id.PATCH.offload = true
user_by_id.PATCH.body = body_schema(users, false, { password = PASSWORD })
user_by_id.PATCH.summary = "Update a user (status inactive/suspended or a new "
  .. "password ends the user's sessions)"
user_by_id.PATCH.handler = route {
  handler = function(req)
    local id = id_param(req, "id", "user")
    local values = input(req, users, false)
    local pw = req.json().password
    local current = fetch(users, id)
    guard_user(req, id)
    only_superusers_grant_superuser(req, values)
    values.email = values.email and values.email:lower()
    local extra
    if pw ~= nil then
      password_policy(pw, values.email or current.email, values.username or current.username)
      extra = { { "password_hash", auth.hash_password(pw) } }
    end
    local user = update(req, users, id, values, extra)
    local disabled = user.status ~= "active" and current.status == "active"
    if disabled or pw ~= nil then
      auth.revoke_user(tostring(id))
    end
    return { json = user }
  end,
}.handler

alias(routes, "/users", {
  permission = "user_read", tags = { "users" }, summary = "List the tenant's users",
  handler = list_users.GET.handler,
})

-- The caller's own profile: any authenticated user of the tenant.
local function me(req)
  local user = query_one("user", ("SELECT %s FROM users WHERE id = $1 AND deleted_at IS NULL")
    :format(users.columns), req.user.id)
  if not user then
    rt.error(401, "unauthenticated", "invalid or expired token")
  end
  return user
end

local ME_BODY = {
  type = "object", additionalProperties = false,
  properties = {
    username = text(100, 1), email = { type = "string", format = "email" },
    full_name = text(200), phone = text(40, nil, true), password = PASSWORD,
    current_password = text(256),
  },
}

local update_me = route {
  scope = "tenant", offload = true, tags = { "users" }, body = ME_BODY,
  summary = "Update your own profile; a new password needs current_password and "
    .. "ends all your sessions",
  handler = function(req)
    local body, current = req.json(), me(req)
    local values = {
      username = body.username, email = body.email and body.email:lower(),
      full_name = body.full_name, phone = body.phone,
    }
    local extra
    if body.password ~= nil then
      if body.current_password == nil then
        invalid("current_password", "is required to change the password")
      end
      local stored = query_one("user", "SELECT password_hash FROM users WHERE id = $1",
        req.user.id)
      local hash = stored.password_hash ~= NULL and stored.password_hash or nil
      if not auth.verify_password(body.current_password, hash) then
        invalid("current_password", "is not correct")
      end
      password_policy(body.password, values.email or current.email,
        values.username or current.username)
      extra = { { "password_hash", auth.hash_password(body.password) } }
    end
    local user = update(req, users, current.id, values, extra)
    if extra then
      auth.revoke_user(req.user.id)
    end
    return { json = user }
  end,
}

routes[API .. "/users/me"] = {
  GET = route {
    tags = { "users" }, summary = "Your own profile",
    handler = function(req)
      return { json = me(req) }
    end,
  },
  PUT = update_me,
  PATCH = update_me,
}

-- Roles of a user, and assigning and removing them.
local ROLE_OF_USER = "r.id, r.code, r.name, r.description, r.priority, r.role_type, "
  .. "r.is_system, ur.created_at AS assigned_at"

-- A role named in a body by role_id or role_code (422 when neither or none).
local function role_in_body(body)
  if body.role_id == nil and body.role_code == nil then
    invalid("role_id", "is required")
  end
  local role = query_one("role", ("SELECT %s FROM roles WHERE id = $1 OR code = $2")
    :format(roles.columns), body.role_id, body.role_code)
  if not role then
    invalid(body.role_id and "role_id" or "role_code", "does not exist")
  end
  return role
end

routes[API .. "/users/:id/roles"] = {
  GET = route {
    permission = "user_read", tags = { "users", "roles" }, summary = "A user's roles",
    handler = function(req)
      local user = live_user(req)
      local limit, skip = page(req)
      return { json = query("role", ("SELECT %s FROM user_roles ur JOIN roles r ON "
        .. "r.id = ur.role_id WHERE ur.user_id = $1 ORDER BY r.priority DESC, r.id "
        .. "LIMIT $2 OFFSET $3"):format(ROLE_OF_USER), user.id, limit, skip) }
    end,
  },
  POST = route {
    permission = "user_update", tags = { "users", "roles" },
    summary = "Assign a role (only below your own highest priority unless superuser)",
    body = {
      type = "object", additionalProperties = false,
      properties = { role_id = { type = "integer", minimum = 1 }, role_code = CODE },
    },
    handler = function(req)
      local user = live_user(req)
      local role = role_in_body(req.json())
      guard_role(req, role)
      local row = query_one("role assignment", [[
        INSERT INTO user_roles (user_id, role_id, created_by) VALUES ($1, $2, $3)
        RETURNING created_at]], user.id, role.id, actor(req))
      auth.rbac_changed(tostring(user.id))
      role.assigned_at = row.created_at
      return { status = 201, json = role }
    end,
  },
}

routes[API .. "/users/:id/roles/:role_id"] = {
  DELETE = route {
    permission = "user_update", tags = { "users", "roles" },
    summary = "Remove a role from a user (same priority rule as assigning)",
    handler = function(req)
      local user = live_user(req)
      local role = fetch(roles, id_param(req, "role_id", "role"))
      guard_role(req, role)
      if exec("role assignment", "DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2",
          user.id, role.id) == 0 then
        not_found("role assignment")
      end
      auth.rbac_changed(tostring(user.id))
      return { status = 204 }
    end,
  },
}

local PERMISSION_COLS = "p.id, p.code, p.name, p.resource, p.action, p.description"

routes[API .. "/users/:id/permissions"] = {
  GET = route {
    permission = "user_read", tags = { "users", "permissions" },
    summary = "The permissions a user holds through roles",
    handler = function(req)
      local user = live_user(req)
      local limit, skip = page(req)
      return { json = query("permission", ("SELECT DISTINCT %s FROM user_roles ur "
        .. "JOIN role_permissions rp ON rp.role_id = ur.role_id "
        .. "JOIN permissions p ON p.id = rp.permission_id WHERE ur.user_id = $1 "
        .. "ORDER BY p.code LIMIT $2 OFFSET $3"):format(PERMISSION_COLS), user.id, limit,
        skip) }
    end,
  },
}

local GROUP_OF_USER = "g.id, g.code, g.name, g.description, g.priority, g.group_type, "
  .. "m.created_at AS joined_at"

routes[API .. "/users/:id/groups"] = {
  GET = route {
    permission = "user_read", tags = { "users", "user-groups" },
    summary = "The groups a user belongs to",
    handler = function(req)
      local user = live_user(req)
      local limit, skip = page(req)
      return { json = query("user group", ("SELECT %s FROM user_group_members m "
        .. "JOIN user_groups g ON g.id = m.group_id WHERE m.user_id = $1 "
        .. "ORDER BY g.priority DESC, g.id LIMIT $2 OFFSET $3"):format(GROUP_OF_USER),
        user.id, limit, skip) }
    end,
  },
}

-- ---- roles ------------------------------------------------------------------

-- System roles come from the seeds, which restore them: their code and
-- permission set are fixed and they cannot be deleted (409).
local function not_system_role(role, what)
  if role.is_system then
    conflict(("%s is a system role: %s"):format(role.code, what))
  end
end

crud(routes, roles, "/roles", "role", {
  create = function(req, values)
    guard_role(req, { code = values.code, priority = values.priority or 0 })
  end,
  update = function(req, current, values)
    guard_role(req, current)
    if values.priority then
      guard_role(req, { code = current.code, priority = values.priority })
    end
    if values.code and values.code ~= current.code then
      not_system_role(current, "its code cannot change")
    end
  end,
  delete = function(req, current)
    not_system_role(current, "it cannot be deleted")
    guard_role(req, current)
  end,
  deleted = function()
    auth.rbac_changed()
  end,
})

local function live_role(req)
  return fetch(roles, id_param(req, "id", "role"))
end

-- A role whose permission set the caller may change.
local function changeable_role(req)
  local role = live_role(req)
  not_system_role(role, "its permissions come from the seeds; create a custom role")
  guard_role(req, role)
  return role
end

routes[API .. "/roles/:id/permissions"] = {
  GET = route {
    permission = "role_read", tags = { "roles", "permissions" },
    summary = "A role's permissions",
    handler = function(req)
      local role = live_role(req)
      local limit, skip = page(req)
      return { json = query("permission", ("SELECT %s, rp.created_at AS granted_at "
        .. "FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id "
        .. "WHERE rp.role_id = $1 ORDER BY p.code LIMIT $2 OFFSET $3")
        :format(PERMISSION_COLS), role.id, limit, skip) }
    end,
  },
  POST = route {
    permission = "role_update", tags = { "roles", "permissions" },
    summary = "Add a permission (permission_id or permission_code) to a role",
    body = {
      type = "object", additionalProperties = false,
      properties = { permission_id = { type = "integer", minimum = 1 },
        permission_code = CODE },
    },
    handler = function(req)
      local role = changeable_role(req)
      local body = req.json()
      if body.permission_id == nil and body.permission_code == nil then
        invalid("permission_id", "is required")
      end
      local perm = query_one("permission", ("SELECT %s FROM permissions WHERE id = $1 "
        .. "OR code = $2"):format(permissions.columns), body.permission_id,
        body.permission_code)
      if not perm then
        invalid(body.permission_id and "permission_id" or "permission_code",
          "does not exist")
      end
      exec("role permission", "INSERT INTO role_permissions (role_id, permission_id) "
        .. "VALUES ($1, $2)", role.id, perm.id)
      auth.rbac_changed()
      return { status = 201, json = perm }
    end,
  },
}

routes[API .. "/roles/:id/permissions/:permission_id"] = {
  DELETE = route {
    permission = "role_update", tags = { "roles", "permissions" },
    summary = "Remove a permission from a role",
    handler = function(req)
      local role = changeable_role(req)
      local pid = id_param(req, "permission_id", "permission")
      if exec("role permission", "DELETE FROM role_permissions WHERE role_id = $1 "
          .. "AND permission_id = $2", role.id, pid) == 0 then
        not_found("permission of this role")
      end
      auth.rbac_changed()
      return { status = 204 }
    end,
  },
}

-- ---- permissions ------------------------------------------------------------

local list_permissions = crud(routes, permissions, "/permissions", "permission")
routes[API .. "/permissions/:id"].DELETE = nil

-- code is {resource}_{action} (the table checks it too); it and the name
-- are derived when left out.
list_permissions.POST.handler = route {
  handler = function(req)
    local values = input(req, permissions, true)
    local code = values.resource .. "_" .. values.action
    if values.code and values.code ~= code then
      invalid("code", "must be {resource}_{action}: " .. code)
    end
    values.code = code
    values.name = values.name
      or values.action:gsub("^%l", string.upper) .. " " .. values.resource
    return { status = 201, json = insert(req, permissions, values) }
  end,
}.handler

-- ---- user groups ------------------------------------------------------------

-- Groups from the seeds (group_type system) keep their code and stay.
local function not_system_group(group, what)
  if group.group_type == "system" then
    conflict(("%s is a system group: %s"):format(group.code, what))
  end
end

local list_groups = crud(routes, groups, "/user-groups", "group", {
  update = function(_, current, values)
    if values.code and values.code ~= current.code then
      not_system_group(current, "its code cannot change")
    end
  end,
  delete = function(_, current)
    not_system_group(current, "it cannot be deleted")
  end,
})

alias(routes, "/user-groups", {
  permission = "group_read", tags = { "user-groups" },
  summary = "List the tenant's user groups", handler = list_groups.GET.handler,
})

local MEMBER_COLS = "u.id, u.username, u.email, u.full_name, u.status"
local MEMBER = MEMBER_COLS .. ", m.created_at AS joined_at"

routes[API .. "/user-groups/:id/members"] = {
  GET = route {
    permission = "group_read", tags = { "user-groups" }, summary = "A group's members",
    handler = function(req)
      local group = fetch(groups, id_param(req, "id", "user group"))
      local limit, skip = page(req)
      return { json = query("member", ("SELECT %s FROM user_group_members m JOIN users u "
        .. "ON u.id = m.user_id WHERE m.group_id = $1 AND u.deleted_at IS NULL "
        .. "ORDER BY u.id LIMIT $2 OFFSET $3"):format(MEMBER), group.id, limit, skip) }
    end,
  },
  POST = route {
    permission = "group_update", tags = { "user-groups" }, summary = "Add a user to a group",
    body = {
      type = "object", additionalProperties = false, required = { "user_id" },
      properties = { user_id = { type = "integer", minimum = 1 } },
    },
    handler = function(req)
      local group = fetch(groups, id_param(req, "id", "user group"))
      local user_id = req.json().user_id
      local member = query_one("user", ("SELECT %s, now() AS joined_at FROM users u "
        .. "WHERE u.id = $1 AND u.deleted_at IS NULL"):format(MEMBER_COLS), user_id)
      if not member then
        invalid("user_id", "does not exist")
      end
      exec("group member", "INSERT INTO user_group_members (user_id, group_id) "
        .. "VALUES ($1, $2)", user_id, group.id)
      return { status = 201, json = member }
    end,
  },
}

routes[API .. "/user-groups/:id/members/:user_id"] = {
  DELETE = route {
    permission = "group_update", tags = { "user-groups" },
    summary = "Remove a user from a group",
    handler = function(req)
      local group = fetch(groups, id_param(req, "id", "user group"))
      local user_id = id_param(req, "user_id", "member")
      if exec("group member", "DELETE FROM user_group_members WHERE group_id = $1 "
          .. "AND user_id = $2", group.id, user_id) == 0 then
        not_found("member")
      end
      return { status = 204 }
    end,
  },
}

-- ---- menus ------------------------------------------------------------------

-- Is candidate the menu itself or one of its descendants?
local function in_subtree(id, candidate)
  return query_one("menu", [[
    WITH RECURSIVE sub AS (
      SELECT id FROM menus WHERE id = $1
      UNION SELECT m.id FROM menus m JOIN sub ON m.parent_id = sub.id)
    SELECT 1 AS found FROM sub WHERE id = $2]], id, candidate) ~= nil
end

local list_menus = crud(routes, menus, "/menus", "menu", {
  update = function(_, current, values)
    local parent = values.parent_id
    if parent ~= nil and parent ~= NULL and in_subtree(current.id, parent) then
      invalid("parent_id", "must not be the menu itself or one of its descendants")
    end
  end,
})
list_menus.GET.summary = "List menus, flat, by parent then sort_order"
routes[API .. "/menus/:id"].DELETE.summary = "Delete a menu and its submenus"

alias(routes, "/menus", {
  permission = "menu_read", tags = { "menus" }, summary = "List the tenant's menus",
  handler = list_menus.GET.handler,
})

routes[API .. "/menus/tree"] = {
  GET = route {
    permission = "menu_read", tags = { "menus" },
    summary = "Menus as a tree: roots with nested children, by sort_order",
    handler = function(req)
      local all = query("menu", ("SELECT %s FROM menus ORDER BY sort_order, id")
        :format(menus.columns))
      local by_id, roots = {}, json.array()
      for _, m in ipairs(all) do
        m.children = json.array()
        by_id[m.id] = m
      end
      for _, m in ipairs(all) do
        local parent = m.parent_id ~= NULL and by_id[m.parent_id]
        local siblings = parent and parent.children or roots
        siblings[#siblings + 1] = m
      end
      return { json = roots }
    end,
  },
}

local ORDER_ITEMS = {
  type = "array", minItems = 1, maxItems = 1000,
  items = {
    type = "object", additionalProperties = false, required = { "id", "sort_order" },
    properties = {
      id = { type = "integer", minimum = 1 },
      parent_id = { type = "integer", minimum = 1, nullable = true },
      sort_order = { type = "integer", minimum = -1000000, maximum = 1000000 },
    },
  },
}

-- The new parent of every menu after applying items, or a 422 naming the
-- items that refer to missing menus, repeat, or would make a cycle.
local function reparent(items)
  local parent = {}
  for _, m in ipairs(query("menu", "SELECT id, parent_id FROM menus FOR UPDATE")) do
    parent[m.id] = m.parent_id ~= NULL and m.parent_id or false
  end
  local fields, seen = {}, {}
  for i, it in ipairs(items) do
    local at = "items[" .. i .. "]"
    if parent[it.id] == nil then
      fields[at .. ".id"] = "does not exist"
    elseif seen[it.id] then
      fields[at .. ".id"] = "is listed twice"
    end
    seen[it.id] = true
    if it.parent_id ~= nil and it.parent_id ~= NULL and parent[it.parent_id] == nil then
      fields[at .. ".parent_id"] = "does not exist"
    end
  end
  invalid_fields(fields)
  for _, it in ipairs(items) do
    if it.parent_id ~= nil then
      parent[it.id] = it.parent_id ~= NULL and it.parent_id or false
    end
  end
  for i, it in ipairs(items) do
    local visited, at = {}, parent[it.id]
    while at do
      if at == it.id or visited[at] then
        fields["items[" .. i .. "].parent_id"] = "would make a cycle"
        break
      end
      visited[at] = true
      at = parent[at]
    end
  end
  invalid_fields(fields)
  return parent
end

routes[API .. "/menus/order"] = {
  PUT = route {
    permission = "menu_update", tags = { "menus" },
    summary = "Reorder menus: a list of {id, parent_id, sort_order} (or {items: [...]}); "
      .. "parent_id left out keeps the parent; no cycles",
    handler = function(req)
      local body = req.json()
      local items = type(body) == "table" and body.items or body
      items = rt.validate(ORDER_ITEMS, items)
      local parent = reparent(items)
      local rows = json.array()
      for i, it in ipairs(items) do
        rows[i] = { id = it.id, parent_id = parent[it.id] or NULL, sort_order = it.sort_order }
      end
      local n = exec("menu", [[
        UPDATE menus m SET parent_id = x.parent_id, sort_order = x.sort_order,
          updated_at = now(), updated_by = $2
        FROM json_to_recordset($1::json) AS x(id bigint, parent_id bigint, sort_order integer)
        WHERE m.id = x.id]], json.encode(rows), actor(req))
      return { json = { updated = n } }
    end,
  },
}

-- ---- boards -----------------------------------------------------------------

local list_boards = crud(routes, boards, "/boards", "board")

alias(routes, "/boards", {
  permission = "board_read", tags = { "boards" }, summary = "List the tenant's boards",
  handler = list_boards.GET.handler,
})

return routes

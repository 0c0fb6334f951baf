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
local invalid_fields = rt.invalid

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

-- The permission codes the caller holds through roles (once per request).
local HELD_SQL = [[
  SELECT coalesce(string_agg(DISTINCT p.code, ','), '') AS codes
  FROM user_roles ur
  JOIN role_permissions rp ON rp.role_id = ur.role_id
  JOIN permissions p ON p.id = rp.permission_id
  WHERE ur.user_id = $1]]

-- Does the caller hold permission code, as the runtime decides it
-- (auth_perms_allow): superusers everything, {resource}_manage every
-- action on its resource?
local function holds(req, code)
  if caller(req).super then
    return true
  end
  if not req.held then
    req.held = {}
    local row = query_one("permission", HELD_SQL, req.user.id)
    for c in (row and row.codes or ""):gmatch("[^,]+") do
      req.held[c] = true
    end
  end
  local resource = code:match("^(.+)_[^_]+$")
  return req.held[code] == true or (resource ~= nil and req.held[resource .. "_manage"] == true)
end

-- Nobody hands out what they do not hold: granting a permission to a role,
-- or a role to a user, needs the caller to hold every permission involved
-- (superusers aside). Otherwise an admin with role_create, role_update and
-- user_update could make a low role, give it any permission and take it.
local function guard_grant(req, codes, what)
  for _, code in ipairs(codes) do
    if not holds(req, code) then
      forbidden(("%s would grant %s, which you do not hold"):format(what, code))
    end
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

local function list(req, res)
  local limit, skip = page(req)
  return query(res.what, ("SELECT %s FROM %s WHERE true%s ORDER BY %s LIMIT $1 OFFSET $2")
    :format(res.columns, res.table, live(res), res.order), limit, skip)
end

-- row, or a 404 for `what` when there is none.
local function found(row, what)
  if not row then
    not_found(what)
  end
  return row
end

local function fetch(res, id)
  return found(query_one(res.what, ("SELECT %s FROM %s WHERE id = $1%s")
    :format(res.columns, res.table, live(res)), id), res.what)
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
  return found(query_one(res.what, ("UPDATE %s SET %s WHERE id = $1%s RETURNING %s")
    :format(res.table, table.concat(sets, ", "), live(res), res.columns),
    table.unpack(args, 1, #args)), res.what)
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

-- ---- links ----------------------------------------------------------------

-- Routes for rows linked to the object at path's :id (a user's roles, a
-- role's permissions, a group's members): GET lists them (link.list: SQL
-- with $1 = the owner's id, no LIMIT); with link.insert and link.delete, POST
-- links the target named in the body by `param` (or its code, `by_code`) and
-- DELETE path/:param unlinks it, 404 when not linked. Both run
-- link.guard(req, owner, target) first and link.changed(req, owner) after;
-- POST also runs link.grant(req, owner, target) (what the link would grant).
local function links(routes, path, link)
  local tags, sum = link.tags, link.summary
  local function owner_of(req)
    return fetch(link.owner, id_param(req, "id", link.owner.what))
  end
  routes[API .. path] = {
    GET = route {
      permission = link.read, tags = tags, summary = sum[1],
      handler = function(req)
        local owner = owner_of(req)
        local limit, skip = page(req)
        return { json = query(link.what, link.list .. " LIMIT $2 OFFSET $3", owner.id,
          limit, skip) }
      end,
    },
  }
  if not link.insert then
    return
  end
  local target, target_param, by_code = link.target, link.param, link.by_code
  local props = { [target_param] = { type = "integer", minimum = 1 } }
  if by_code then
    props[by_code] = CODE
  end
  routes[API .. path].POST = route {
    permission = link.write, tags = tags, summary = sum[2],
    body = { type = "object", additionalProperties = false, properties = props },
    handler = function(req)
      local owner, body = owner_of(req), req.json()
      if body[target_param] == nil and (not by_code or body[by_code] == nil) then
        invalid(target_param, "is required")
      end
      local sql = ("SELECT %s FROM %s WHERE (id = $1%s)%s"):format(target.columns,
        target.table, by_code and " OR code = $2" or "", live(target))
      local row
      if by_code then
        row = query_one(target.what, sql, body[target_param], body[by_code])
      else
        row = query_one(target.what, sql, body[target_param])
      end
      if not row then
        invalid(body[target_param] and target_param or by_code, "does not exist")
      end
      if link.guard then
        link.guard(req, owner, row)
      end
      if link.grant then
        link.grant(req, owner, row)
      end
      local args = { owner.id, row.id, actor(req) }
      local added = query_one(link.what, link.insert,
        table.unpack(args, 1, link.insert:find("$3", 1, true) and 3 or 2))
      if link.changed then
        link.changed(req, owner)
      end
      row[link.stamp] = added.created_at
      return { status = 201, json = row }
    end,
  }
  routes[API .. path .. "/:" .. target_param] = {
    DELETE = route {
      permission = link.write, tags = tags, summary = sum[3],
      handler = function(req)
        local owner = owner_of(req)
        local row = fetch(target, id_param(req, target_param, target.what))
        if link.guard then
          link.guard(req, owner, row)
        end
        if exec(link.what, link.delete, owner.id, row.id) == 0 then
          not_found(link.what)
        end
        if link.changed then
          link.changed(req, owner)
        end
        return { status = 204 }
      end,
    },
  }
end

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
    -- a new address is not verified (unless this request says it is)
    if values.email and values.email ~= current.email and values.email_verified == nil then
      values.email_verified = false
    end
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
    if user.is_superuser ~= current.is_superuser or user.status ~= current.status then
      auth.rbac_changed(tostring(id)) -- what the user may do changed
    end
    return { json = user }
  end,
}.handler

alias(routes, "/users", {
  permission = "user_read", tags = { "users" }, summary = "List the tenant's users",
  handler = list_users.GET.handler,
})

-- The caller's own profile: any authenticated user of the tenant.
local ME_SQL = ("SELECT %s FROM users WHERE id = $1 AND deleted_at IS NULL")
  :format(users.columns)

local function me(req)
  local user = query_one("user", ME_SQL, req.user.id)
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
    local extra = {}
    if values.email and values.email ~= current.email then
      extra[1] = { "email_verified", false } -- a new address is not verified
    end
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
      extra[#extra + 1] = { "password_hash", auth.hash_password(body.password) }
    end
    local user = update(req, users, current.id, values, extra)
    if body.password ~= nil then
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

local PERMISSION_COLS = "p.id, p.code, p.name, p.resource, p.action, p.description"

links(routes, "/users/:id/roles", {
  owner = users, target = roles, what = "role assignment", tags = { "users", "roles" },
  read = "user_read", write = "user_update", param = "role_id", by_code = "role_code",
  stamp = "assigned_at",
  summary = { "A user's roles",
    "Assign a role (only below your own highest priority unless superuser)",
    "Remove a role from a user (same priority rule as assigning)" },
  list = "SELECT r.id, r.code, r.name, r.description, r.priority, r.role_type, "
    .. "r.is_system, ur.created_at AS assigned_at FROM user_roles ur JOIN roles r "
    .. "ON r.id = ur.role_id WHERE ur.user_id = $1 ORDER BY r.priority DESC, r.id",
  insert = "INSERT INTO user_roles (user_id, role_id, created_by) VALUES ($1, $2, $3) "
    .. "RETURNING created_at",
  delete = "DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2",
  guard = function(req, _, role)
    guard_role(req, role)
  end,
  grant = function(req, _, role)
    local codes = {}
    for _, p in ipairs(query("role permission", [[
      SELECT p.code FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
      WHERE rp.role_id = $1 ORDER BY p.code]], role.id)) do
      codes[#codes + 1] = p.code
    end
    guard_grant(req, codes, "role " .. role.code)
  end,
  changed = function(_, user)
    auth.rbac_changed(tostring(user.id))
  end,
})

links(routes, "/users/:id/permissions", {
  owner = users, what = "permission", tags = { "users", "permissions" },
  read = "user_read", summary = { "The permissions a user holds through roles" },
  list = "SELECT DISTINCT " .. PERMISSION_COLS .. " FROM user_roles ur "
    .. "JOIN role_permissions rp ON rp.role_id = ur.role_id "
    .. "JOIN permissions p ON p.id = rp.permission_id WHERE ur.user_id = $1 ORDER BY p.code",
})

links(routes, "/users/:id/groups", {
  owner = users, what = "user group", tags = { "users", "user-groups" },
  read = "user_read", summary = { "The groups a user belongs to" },
  list = "SELECT g.id, g.code, g.name, g.description, g.priority, g.group_type, "
    .. "m.created_at AS joined_at FROM user_group_members m JOIN user_groups g "
    .. "ON g.id = m.group_id WHERE m.user_id = $1 ORDER BY g.priority DESC, g.id",
})

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
    -- its holders' cached sets carry its priority and code
    auth.rbac_changed()
  end,
  delete = function(req, current)
    not_system_role(current, "it cannot be deleted")
    guard_role(req, current)
  end,
  deleted = function()
    auth.rbac_changed()
  end,
})

links(routes, "/roles/:id/permissions", {
  owner = roles, target = permissions, what = "role permission",
  tags = { "roles", "permissions" }, read = "role_read", write = "role_update",
  param = "permission_id", by_code = "permission_code", stamp = "granted_at",
  summary = { "A role's permissions",
    "Add a permission (permission_id or permission_code) to a role",
    "Remove a permission from a role" },
  list = "SELECT " .. PERMISSION_COLS .. ", rp.created_at AS granted_at "
    .. "FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id "
    .. "WHERE rp.role_id = $1 ORDER BY p.code",
  insert = "INSERT INTO role_permissions (role_id, permission_id) VALUES ($1, $2) "
    .. "RETURNING created_at",
  delete = "DELETE FROM role_permissions WHERE role_id = $1 AND permission_id = $2",
  guard = function(req, role)
    not_system_role(role, "its permissions come from the seeds; create a custom role")
    guard_role(req, role)
  end,
  grant = function(req, role, permission)
    guard_grant(req, { permission.code }, "adding it to role " .. role.code)
  end,
  changed = function()
    auth.rbac_changed()
  end,
})

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

links(routes, "/user-groups/:id/members", {
  owner = groups, target = users, what = "group member", tags = { "user-groups" },
  read = "group_read", write = "group_update", param = "user_id", stamp = "joined_at",
  summary = { "A group's members", "Add a user to a group", "Remove a user from a group" },
  list = "SELECT u.id, u.username, u.email, u.full_name, u.status, m.created_at AS "
    .. "joined_at FROM user_group_members m JOIN users u ON u.id = m.user_id "
    .. "WHERE m.group_id = $1 AND u.deleted_at IS NULL ORDER BY u.id",
  insert = "INSERT INTO user_group_members (group_id, user_id) VALUES ($1, $2) "
    .. "RETURNING created_at",
  delete = "DELETE FROM user_group_members WHERE group_id = $1 AND user_id = $2",
  -- Groups carry no roles today, so membership grants nothing; dropping the
  -- member's cached set keeps it right the day they do.
  changed = function(req)
    auth.rbac_changed(req.params.user_id or tostring(req.json().user_id))
  end,
})

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
    handler = function()
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

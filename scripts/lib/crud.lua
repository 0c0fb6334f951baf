-- crud: the small library behind the tenant-scope API (scripts/api/users.lua,
-- roles.lua, permissions.lua, user_groups.lua, menus.lua, boards.lua).
--
-- A resource is a table of one tenant described by a field table (see
-- lib/resources.lua); from it this module builds the SQL and the route
-- entries for list (skip/limit), get, create, update and delete, and for
-- links between two resources (a user's roles, a role's permissions, a
-- group's members). A route file names every path literally and takes its
-- entries from here:
--
--   ["/api/v1/boards/:id"] = {
--     GET = crud.get_route(boards, { permission = "board_read" }),
--     DELETE = crud.delete_route(boards, { permission = "board_delete" }),
--   },
--
-- The runtime has already resolved the tenant, scoped the transaction to it
-- (RLS hides other tenants' rows: they are 404 like missing ones) and
-- checked the route's permission. Client input reaches SQL only as $n
-- parameters; column and table names come from the field tables, never from
-- the request. Database failures become 500/503/504 (logged, rolled back);
-- unique violations 409, foreign key and check violations 422.
--
-- Uses: rt (error, invalid, null), rt.db, rt.json.
local db = require "rt.db"
local json = require "rt.json"
local rt = require "rt"

local M = {}

local NULL = rt.null

-- ---- errors -----------------------------------------------------------------

-- Raises a 422 naming every field in fields (a no-op when it is empty).
local invalid_fields = rt.invalid
M.invalid_fields = invalid_fields

-- Raises a 422 naming one field.
function M.invalid(field, problem)
  invalid_fields({ [field] = problem })
end

function M.not_found(what)
  rt.error(404, "not_found", what .. " not found")
end

function M.forbidden(message)
  rt.error(403, "forbidden", message)
end

function M.conflict(message, fields)
  rt.error(409, "conflict", message, fields)
end

-- The column a unique violation names ("users_tenant_id_email_key" -> email),
-- as a fields table; nil for keys over several columns.
function M.taken(message)
  local col = tostring(message):match('"[%w_]-_tenant_id_([%w_]+)_key"')
  if col and not col:find("_id", 1, true) then
    return { [col] = "is already taken" }
  end
end

-- ---- database calls ---------------------------------------------------------

-- A database failure on its way from a query to the route wrapper below,
-- which returns it as `nil, message`.
local DbFailure = {}

-- Runs fn(sql, ...) and maps failures: 23505 -> 409, 23503/23514 -> 422,
-- anything else raises DbFailure, which the route wrapper turns into
-- `nil, err` (500 or 503/504, logged, rolled back). what names the object
-- in messages ("user").
local function run(fn, what, sql, ...)
  local res, err, err_t = fn(sql, ...)
  if err == nil then
    return res
  end
  local state = err_t and err_t.sqlstate
  if state == "23505" then
    local fields = M.taken(err_t.message or err)
    M.conflict(what .. " already exists" .. (fields and " (" .. next(fields) .. ")" or ""),
      fields)
  elseif state == "23503" then
    rt.error(422, "validation_failed", what .. " refers to something that does not exist")
  elseif state == "23514" then
    rt.error(422, "validation_failed", what .. " breaks a rule of the data model")
  end
  error(setmetatable({ message = err }, DbFailure), 0)
end

-- rt.db.query, query_one and exec with the failures mapped as above.
-- Passes on the result of an rt.* call (rt.auth.revoke_user, ...) that
-- follows the runtime's convention: its failure (nil, message) goes the way
-- of a database failure, so the route answers as the call's failure decided
-- (503/504 for the database, else 500) and the transaction rolls back.
function M.must(ok, err, ...)
  if ok == nil then
    error(setmetatable({ message = err }, DbFailure), 0)
  end
  return ok, err, ...
end

function M.query(what, sql, ...)
  return run(db.query, what, sql, ...)
end

function M.query_one(what, sql, ...)
  return run(db.query_one, what, sql, ...)
end

function M.exec(what, sql, ...)
  return run(db.exec, what, sql, ...)
end

-- A route table entry: scope tenant unless given, and a handler whose
-- database failures come back as `nil, err`. Changes spec and returns it.
function M.route(spec)
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

-- A path parameter that must be an id; anything else names nothing (404 for
-- what).
function M.id_param(req, name, what)
  local s = req.params[name]
  if not s or not s:find("^[1-9]%d*$") or #s > 18 then
    M.not_found(what)
  end
  return math.tointeger(tonumber(s))
end

-- limit, skip from the query string: defaults 100 and 0, limit at most
-- 1000; anything else is a 422 naming the parameter.
function M.page(req)
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
function M.actor(req)
  local u = req.user
  if u and u.scope == "tenant" and u.id:find("^%d+$") then
    return u.id
  end
  return NULL
end

-- ---- schemas ----------------------------------------------------------------

-- A string of at most max characters (at least min), null allowed when
-- nullable.
function M.text(max, min, nullable)
  return { type = "string", minLength = min, maxLength = max, nullable = nullable }
end

-- A code: ^[a-z][a-z0-9_]{1,39}$ (the validator knows format "code").
M.CODE = { type = "string", format = "code" }

-- ---- resources --------------------------------------------------------------
--
-- A resource: table, what (for messages), plural, tag (OpenAPI), columns
-- (the SELECT list; never password_hash), order, soft (deleted_at),
-- deleted_status (a status the soft delete sets too), audit
-- (created_by/updated_by) and fields: { name, schema, alias = seed 002 name,
-- required, create_only, json (a jsonb column) }.

-- The body schema: the fields under their own names and their aliases, plus
-- tenant_id, which seed clients send (it must name this request's tenant),
-- plus extra { name = schema }. create: every field; else not create_only.
function M.body_schema(res, create, extra)
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

-- The validated body as { field = value } under the fields' own names; 422
-- for a missing required field (create), an alias that disagrees with its
-- field, or a tenant_id that is not this request's tenant.
function M.input(req, res, create)
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

-- One page of live rows in res.order.
function M.list(req, res)
  local limit, skip = M.page(req)
  return M.query(res.what, ("SELECT %s FROM %s WHERE true%s ORDER BY %s LIMIT $1 OFFSET $2")
    :format(res.columns, res.table, live(res), res.order), limit, skip)
end

-- row, or a 404 for `what` when there is none.
local function found(row, what)
  if not row then
    M.not_found(what)
  end
  return row
end

-- The live row of id, or a 404.
function M.fetch(res, id)
  return found(M.query_one(res.what, ("SELECT %s FROM %s WHERE id = $1%s")
    :format(res.columns, res.table, live(res)), id), res.what)
end

-- Appends a parameter; returns its placeholder.
local function param(args, v, cast)
  args[#args + 1] = v
  return "$" .. #args .. (cast or "")
end

-- INSERTs values (fields of res) plus extra { {column, value}, ... }; returns
-- the new row.
function M.insert(req, res, values, extra)
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
    local who = param(args, M.actor(req))
    cols[#cols + 1], marks[#marks + 1] = "created_by", who
    cols[#cols + 1], marks[#marks + 1] = "updated_by", who
  end
  return M.query_one(res.what, ("INSERT INTO %s (%s) VALUES (%s) RETURNING %s")
    :format(res.table, table.concat(cols, ", "), table.concat(marks, ", "), res.columns),
    table.unpack(args, 1, #args))
end

-- UPDATEs the given values (and extra columns) of a live row; returns the
-- row, 404 when gone.
function M.update(req, res, id, values, extra)
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
    sets[#sets + 1] = "updated_by = " .. param(args, M.actor(req))
  end
  if #sets == 0 then
    return M.fetch(res, id)
  end
  return found(M.query_one(res.what, ("UPDATE %s SET %s WHERE id = $1%s RETURNING %s")
    :format(res.table, table.concat(sets, ", "), live(res), res.columns),
    table.unpack(args, 1, #args)), res.what)
end

-- Soft delete (deleted_at) or a real one; 404 when already gone.
function M.remove(req, res, id)
  local n
  if res.soft then
    n = M.exec(res.what, ("UPDATE %s SET deleted_at = now(), updated_at = now(), "
      .. "updated_by = $2%s WHERE id = $1 AND deleted_at IS NULL")
      :format(res.table, res.deleted_status
        and (", status = '%s'"):format(res.deleted_status) or ""),
      id, M.actor(req))
  else
    n = M.exec(res.what, ("DELETE FROM %s WHERE id = $1"):format(res.table), id)
  end
  if n == 0 then
    M.not_found(res.what)
  end
end

-- ---- route entries for one resource ------------------------------------------
--
-- Each takes the resource and opts: route fields (permission, scope, summary,
-- ...) that replace the defaults, and the hooks named below, which are not
-- route fields. The path parameter of an object is :id.

-- opts without hook names, over defaults, as a wrapped route entry.
local function entry(defaults, opts, hooks)
  local spec = {}
  for k, v in pairs(defaults) do
    spec[k] = v
  end
  for k, v in pairs(opts or {}) do
    if not hooks[k] then
      spec[k] = v
    end
  end
  return M.route(spec)
end

local NO_HOOKS = {}

-- GET: a page of the resource's rows.
function M.list_route(res, opts)
  return entry({ tags = { res.tag }, summary = "List " .. res.plural,
    handler = function(req)
      return { json = M.list(req, res) }
    end,
  }, opts, NO_HOOKS)
end

-- GET: one row by :id.
function M.get_route(res, opts)
  return entry({ tags = { res.tag }, summary = "Get a " .. res.what,
    handler = function(req)
      return { json = M.fetch(res, M.id_param(req, "id", res.what)) }
    end,
  }, opts, NO_HOOKS)
end

-- POST: creates a row from the body (201). opts.before(req, values) runs
-- first and may refuse or change values.
function M.create_route(res, opts)
  local before = opts and opts.before
  return entry({ tags = { res.tag }, summary = "Create a " .. res.what,
    body = M.body_schema(res, true),
    handler = function(req)
      local values = M.input(req, res, true)
      if before then
        before(req, values)
      end
      return { status = 201, json = M.insert(req, res, values) }
    end,
  }, opts, { before = true })
end

-- PATCH: changes the fields the body names. opts.before(req, current,
-- values) runs after the row is read, before it is written.
function M.update_route(res, opts)
  local before = opts and opts.before
  return entry({ tags = { res.tag }, summary = "Update a " .. res.what,
    body = M.body_schema(res, false),
    handler = function(req)
      local id = M.id_param(req, "id", res.what)
      local values = M.input(req, res, false)
      local current = M.fetch(res, id)
      if before then
        before(req, current, values)
      end
      return { json = M.update(req, res, id, values) }
    end,
  }, opts, { before = true })
end

-- DELETE: removes the row (204). opts.before(req, current) may refuse;
-- opts.after(req, current) runs once it is gone.
function M.delete_route(res, opts)
  local before, after = opts and opts.before, opts and opts.after
  return entry({ tags = { res.tag },
    summary = "Delete a " .. res.what .. (res.soft and " (soft)" or ""),
    handler = function(req)
      local id = M.id_param(req, "id", res.what)
      local current = M.fetch(res, id)
      if before then
        before(req, current)
      end
      M.remove(req, res, id)
      if after then
        after(req, current)
      end
      return { status = 204 }
    end,
  }, opts, { before = true, after = true })
end

-- ---- route entries for links -----------------------------------------------
--
-- A link: rows linked to an owner object (the :id of the path): owner and
-- target (resources), what (for messages), tags, list (SQL with $1 = the
-- owner's id, no LIMIT), and for links that can change: param (the body
-- field and path parameter naming the target: :role_id), by_code (a body
-- field naming the target by code instead), stamp (the column the answer
-- carries the link's created_at in), insert (SQL: $1 owner id, $2 target
-- id, $3 when present the actor) and delete (SQL: $1 owner id, $2 target
-- id). Hooks: guard(req, owner, target) before adding or removing,
-- grant(req, owner, target) before adding (what the link would grant),
-- changed(req, owner) after either.

local function owner_of(req, link)
  return M.fetch(link.owner, M.id_param(req, "id", link.owner.what))
end

-- GET: a page of the owner's linked rows.
function M.links_route(link, opts)
  return entry({ tags = link.tags,
    handler = function(req)
      local owner = owner_of(req, link)
      local limit, skip = M.page(req)
      return { json = M.query(link.what, link.list .. " LIMIT $2 OFFSET $3", owner.id,
        limit, skip) }
    end,
  }, opts, NO_HOOKS)
end

-- POST: links the target the body names (201, the target row with stamp);
-- 422 when it names none or one that does not exist.
function M.link_route(link, opts)
  local target, target_param, by_code = link.target, link.param, link.by_code
  local props = { [target_param] = { type = "integer", minimum = 1 } }
  if by_code then
    props[by_code] = M.CODE
  end
  local sql = ("SELECT %s FROM %s WHERE (id = $1%s)%s"):format(target.columns,
    target.table, by_code and " OR code = $2" or "", live(target))
  local nargs = link.insert:find("$3", 1, true) and 3 or 2
  return entry({ tags = link.tags,
    body = { type = "object", additionalProperties = false, properties = props },
    handler = function(req)
      local owner, body = owner_of(req, link), req.json()
      if body[target_param] == nil and (not by_code or body[by_code] == nil) then
        M.invalid(target_param, "is required")
      end
      local row
      if by_code then
        row = M.query_one(target.what, sql, body[target_param], body[by_code])
      else
        row = M.query_one(target.what, sql, body[target_param])
      end
      if not row then
        M.invalid(body[target_param] and target_param or by_code, "does not exist")
      end
      if link.guard then
        link.guard(req, owner, row)
      end
      if link.grant then
        link.grant(req, owner, row)
      end
      local args = { owner.id, row.id, M.actor(req) }
      local added = M.query_one(link.what, link.insert, table.unpack(args, 1, nargs))
      if link.changed then
        link.changed(req, owner)
      end
      row[link.stamp] = added.created_at
      return { status = 201, json = row }
    end,
  }, opts, NO_HOOKS)
end

-- DELETE: unlinks the target of the path parameter link.param (204); 404
-- when the owner or target is missing or they are not linked.
function M.unlink_route(link, opts)
  local target, target_param = link.target, link.param
  return entry({ tags = link.tags,
    handler = function(req)
      local owner = owner_of(req, link)
      local row = M.fetch(target, M.id_param(req, target_param, target.what))
      if link.guard then
        link.guard(req, owner, row)
      end
      if M.exec(link.what, link.delete, owner.id, row.id) == 0 then
        M.not_found(link.what)
      end
      if link.changed then
        link.changed(req, owner)
      end
      return { status = 204 }
    end,
  }, opts, NO_HOOKS)
end

return M

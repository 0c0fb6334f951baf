-- guards: who may change whom in a tenant, beyond the route's permission
-- (which the runtime checked before the handler). Roles have priorities: a
-- non-superuser only grants, revokes or changes roles below their own
-- highest one, only changes users who rank below them, and never hands out
-- a permission they do not hold.
--
-- The caller's rank and held permissions are read once per request and
-- kept on req (req.rank, req.held).
--
-- Uses: lib/crud (query_one, forbidden).
local crud = require "lib.crud"

local M = {}

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
function M.rank_of(id)
  return crud.query_one("user", RANK_SQL, id) or { super = false, priority = 0 }
end

-- The caller's rank (once per request). A platform token only reaches the
-- read-only alias routes, after the runtime found it a superuser.
function M.caller(req)
  if not req.rank then
    req.rank = req.user.scope == "tenant" and M.rank_of(req.user.id)
      or { super = true, priority = math.maxinteger }
  end
  return req.rank
end

-- A non-superuser may only grant, revoke or change roles below their own
-- highest priority, and never super_admin. role: { code, priority }.
function M.role(req, role)
  local me = M.caller(req)
  if me.super then
    return
  end
  if role.code == "super_admin" then
    crud.forbidden("only superusers may grant, revoke or change super_admin")
  end
  if role.priority >= me.priority then
    crud.forbidden(("role %s has priority %d, at or above your highest role (%d)")
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
function M.holds(req, code)
  if M.caller(req).super then
    return true
  end
  if not req.held then
    req.held = {}
    local row = crud.query_one("permission", HELD_SQL, req.user.id)
    for c in (row and row.codes or ""):gmatch("[^,]+") do
      req.held[c] = true
    end
  end
  local resource = code:match("^(.+)_[^_]+$")
  return req.held[code] == true or (resource ~= nil and req.held[resource .. "_manage"] == true)
end

-- Nobody hands out what they do not hold: granting a permission to a role,
-- or a role to a user, needs the caller to hold every permission in codes
-- (superusers aside). Otherwise an admin with role_create, role_update and
-- user_update could make a low role, give it any permission and take it.
-- what names the grant in the message.
function M.grant(req, codes, what)
  for _, code in ipairs(codes) do
    if not M.holds(req, code) then
      crud.forbidden(("%s would grant %s, which you do not hold"):format(what, code))
    end
  end
end

-- A non-superuser may only change or delete users who rank below them.
function M.user(req, id)
  local me = M.caller(req)
  if me.super then
    return
  end
  local them = M.rank_of(id)
  if them.super or them.priority >= me.priority then
    crud.forbidden("this user is a superuser or holds a role at or above yours")
  end
end

-- Only superusers set or clear is_superuser (values: the validated body).
function M.superuser_flag(req, values)
  if values.is_superuser ~= nil and not M.caller(req).super then
    crud.forbidden("only superusers may change is_superuser")
  end
end

return M

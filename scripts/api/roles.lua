-- Roles of a tenant (seed 002) and the permissions each grants.
--
-- A non-superuser creates, changes, deletes and grants only roles below
-- their own highest priority, and adds to a role only permissions they hold
-- (lib/guards). System roles come from the seeds, which restore them: their
-- code and permission set are fixed and they cannot be deleted (409). Any
-- change drops the cached permission sets of the role's holders.
local auth = require "rt.auth"
local crud = require "lib.crud"
local guards = require "lib.guards"
local resources = require "lib.resources"

local roles, permissions = resources.roles, resources.permissions

local function not_system_role(role, what)
  if role.is_system then
    crud.conflict(("%s is a system role: %s"):format(role.code, what))
  end
end

local role_permissions = {
  owner = roles, target = permissions, what = "role permission",
  tags = { "roles", "permissions" }, param = "permission_id",
  by_code = "permission_code", stamp = "granted_at",
  list = "SELECT " .. resources.PERMISSION_COLUMNS .. ", rp.created_at AS granted_at "
    .. "FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id "
    .. "WHERE rp.role_id = $1 ORDER BY p.code",
  insert = "INSERT INTO role_permissions (role_id, permission_id) VALUES ($1, $2) "
    .. "RETURNING created_at",
  delete = "DELETE FROM role_permissions WHERE role_id = $1 AND permission_id = $2",
  guard = function(req, role)
    not_system_role(role, "its permissions come from the seeds; create a custom role")
    guards.role(req, role)
  end,
  grant = function(req, role, permission)
    guards.grant(req, { permission.code }, "adding it to role " .. role.code)
  end,
  changed = function()
    crud.must(auth.rbac_changed())
  end,
}

return {
  ["/api/v1/roles"] = {
    GET = crud.list_route(roles, { permission = "role_read" }),
    POST = crud.create_route(roles, {
      permission = "role_create",
      before = function(req, values)
        guards.role(req, { code = values.code, priority = values.priority or 0 })
      end,
    }),
  },
  ["/api/v1/roles/:id"] = {
    GET = crud.get_route(roles, { permission = "role_read" }),
    PATCH = crud.update_route(roles, {
      permission = "role_update",
      before = function(req, current, values)
        guards.role(req, current)
        if values.priority then
          guards.role(req, { code = current.code, priority = values.priority })
        end
        if values.code and values.code ~= current.code then
          not_system_role(current, "its code cannot change")
        end
        -- its holders' cached sets carry its priority and code
        crud.must(auth.rbac_changed())
      end,
    }),
    DELETE = crud.delete_route(roles, {
      permission = "role_delete",
      before = function(req, current)
        not_system_role(current, "it cannot be deleted")
        guards.role(req, current)
      end,
      after = function()
        crud.must(auth.rbac_changed())
      end,
    }),
  },
  ["/api/v1/roles/:id/permissions"] = {
    GET = crud.links_route(role_permissions, { permission = "role_read",
      summary = "A role's permissions" }),
    POST = crud.link_route(role_permissions, { permission = "role_update",
      summary = "Add a permission (permission_id or permission_code) to a role" }),
  },
  ["/api/v1/roles/:id/permissions/:permission_id"] = {
    DELETE = crud.unlink_route(role_permissions, { permission = "role_update",
      summary = "Remove a permission from a role" }),
  },
}

-- User groups of a tenant (seed 002), their members, and the admin alias
-- /api/v1/tenants/:tenant_id/user-groups. Groups from the seeds (group_type
-- system) keep their code and stay.
local auth = require "rt.auth"
local crud = require "lib.crud"
local resources = require "lib.resources"

local groups, users = resources.groups, resources.users

local function not_system_group(group, what)
  if group.group_type == "system" then
    crud.conflict(("%s is a system group: %s"):format(group.code, what))
  end
end

local members = {
  owner = groups, target = users, what = "group member", tags = { "user-groups" },
  param = "user_id", stamp = "joined_at",
  list = "SELECT u.id, u.username, u.email, u.full_name, u.status, m.created_at AS "
    .. "joined_at FROM user_group_members m JOIN users u ON u.id = m.user_id "
    .. "WHERE m.group_id = $1 AND u.deleted_at IS NULL ORDER BY u.id",
  insert = "INSERT INTO user_group_members (group_id, user_id) VALUES ($1, $2) "
    .. "RETURNING created_at",
  delete = "DELETE FROM user_group_members WHERE group_id = $1 AND user_id = $2",
  -- Groups carry no roles today, so membership grants nothing; dropping the
  -- member's cached set keeps it right the day they do.
  changed = function(req)
    crud.must(auth.rbac_changed(req.params.user_id or tostring(req.json().user_id)))
  end,
}

return {
  ["/api/v1/user-groups"] = {
    GET = crud.list_route(groups, { permission = "group_read" }),
    POST = crud.create_route(groups, { permission = "group_create" }),
  },
  ["/api/v1/user-groups/:id"] = {
    GET = crud.get_route(groups, { permission = "group_read" }),
    PATCH = crud.update_route(groups, {
      permission = "group_update",
      before = function(_, current, values)
        if values.code and values.code ~= current.code then
          not_system_group(current, "its code cannot change")
        end
      end,
    }),
    DELETE = crud.delete_route(groups, {
      permission = "group_delete",
      before = function(_, current)
        not_system_group(current, "it cannot be deleted")
      end,
    }),
  },
  ["/api/v1/user-groups/:id/members"] = {
    GET = crud.links_route(members, { permission = "group_read",
      summary = "A group's members" }),
    POST = crud.link_route(members, { permission = "group_update",
      summary = "Add a user to a group" }),
  },
  ["/api/v1/user-groups/:id/members/:user_id"] = {
    DELETE = crud.unlink_route(members, { permission = "group_update",
      summary = "Remove a user from a group" }),
  },
  ["/api/v1/tenants/:tenant_id/user-groups"] = {
    GET = crud.list_route(groups, { permission = "group_read", scope = "any",
      summary = "List the tenant's user groups (admin alias)" }),
  },
}

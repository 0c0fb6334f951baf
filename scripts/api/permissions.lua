-- Permissions of a tenant (seed 002): listed, read and created, never
-- changed or deleted here. A code is {resource}_{action} (the table checks
-- it too); it and the name are derived when left out.
local crud = require "lib.crud"
local resources = require "lib.resources"

local permissions = resources.permissions

local function create_permission(req)
  local values = crud.input(req, permissions, true)
  local code = values.resource .. "_" .. values.action
  if values.code and values.code ~= code then
    crud.invalid("code", "must be {resource}_{action}: " .. code)
  end
  values.code = code
  values.name = values.name
    or values.action:gsub("^%l", string.upper) .. " " .. values.resource
  return { status = 201, json = crud.insert(req, permissions, values) }
end

return {
  ["/api/v1/permissions"] = {
    GET = crud.list_route(permissions, { permission = "permission_read" }),
    POST = crud.route {
      permission = "permission_create", tags = { "permissions" },
      summary = "Create a permission", body = crud.body_schema(permissions, true),
      handler = create_permission,
    },
  },
  ["/api/v1/permissions/:id"] = {
    GET = crud.get_route(permissions, { permission = "permission_read" }),
  },
}

-- resources: the tables of one tenant that the tenant-scope API serves
-- (seed 002), as lib/crud resources: users, roles, permissions, user
-- groups, menus and boards. Data only; a route file that links two of them
-- (a user's roles) reaches both from here.
--
-- Fields that carry a seed 002 name take it as an alias on input and answer
-- under the column name.
--
-- Uses: lib/crud (text, CODE).
local crud = require "lib.crud"

local text, CODE = crud.text, crud.CODE

local M = {}

local PRIORITY = { type = "integer", minimum = 0, maximum = 1000000 }
local AUDIT = "created_at, updated_at, created_by, updated_by"

M.users = {
  table = "users", what = "user", plural = "users", tag = "users", soft = true,
  deleted_status = "deleted", audit = true, order = "id",
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

M.roles = {
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

M.permissions = {
  table = "permissions", what = "permission", plural = "permissions",
  tag = "permissions", order = "code",
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

-- A permission's columns for queries that join permissions as p.
M.PERMISSION_COLUMNS = "p.id, p.code, p.name, p.resource, p.action, p.description"

M.groups = {
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

M.menus = {
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

M.boards = {
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

return M

-- A default menu: top-level entries and an administration section, each
-- entry shown to users holding its permission.
local menu = {
  { code = "dashboard", name = "Dashboard", url = "/", icon = "home", order = 10 },
  { code = "boards", name = "Boards", url = "/boards", icon = "list", order = 20,
    permission = "board_read" },
  { code = "admin", name = "Administration", icon = "settings", order = 90,
    children = {
      { code = "admin_users", name = "Users", url = "/admin/users", order = 10,
        permission = "user_read" },
      { code = "admin_roles", name = "Roles", url = "/admin/roles", order = 20,
        permission = "role_read" },
      { code = "admin_groups", name = "Groups", url = "/admin/groups", order = 30,
        permission = "group_read" },
      { code = "admin_menus", name = "Menus", url = "/admin/menus", order = 40,
        permission = "menu_update" },
    },
  },
}

local function upsert(s, item, parent_id)
  local row = s:query([[
    INSERT INTO menus (parent_id, code, name, url, icon, sort_order, permission)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (tenant_id, code) DO UPDATE SET parent_id = EXCLUDED.parent_id,
      name = EXCLUDED.name, url = EXCLUDED.url, icon = EXCLUDED.icon,
      sort_order = EXCLUDED.sort_order, permission = EXCLUDED.permission,
      updated_at = now()
    RETURNING id
  ]], parent_id, item.code, item.name, item.url, item.icon, item.order,
    item.permission)[1]
  for _, child in ipairs(item.children or {}) do
    upsert(s, child, row.id)
  end
end

return {
  run = function(s)
    for _, item in ipairs(menu) do
      upsert(s, item, nil)
    end
  end,
}

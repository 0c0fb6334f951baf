-- The default roles of the seed documents (002) and their permission sets.
-- System roles get exactly these permissions: one dropped from a set here is
-- revoked from the role when the seed runs again.
local roles = {
  {
    code = "super_admin", name = "Super administrator", priority = 100,
    role_type = "admin", grants = { "%" },
  },
  {
    code = "admin", name = "Administrator", priority = 50, role_type = "admin",
    grants = {
      "user_%", "role_%", "permission_read", "group_%", "menu_%", "board_%",
      "category_%", "tenant_read", "tenant_update",
    },
  },
  {
    code = "manager", name = "Manager", priority = 30, role_type = "both",
    grants = {
      "user_read", "user_update", "role_read", "permission_read", "group_%",
      "menu_read", "menu_update", "board_%", "category_%", "tenant_read",
    },
  },
  {
    code = "editor", name = "Editor", priority = 20, role_type = "user",
    grants = {
      "user_read", "menu_read", "board_create", "board_read", "board_update",
      "category_create", "category_read", "category_update",
    },
  },
  {
    code = "viewer", name = "Viewer", priority = 10, role_type = "user",
    grants = { "user_read", "menu_read", "board_read", "category_read" },
  },
}

return {
  run = function(s)
    for _, r in ipairs(roles) do
      local row = s:query([[
        INSERT INTO roles (code, name, priority, role_type, is_system)
        VALUES ($1, $2, $3, $4, true)
        ON CONFLICT (tenant_id, code) DO UPDATE SET name = EXCLUDED.name,
          priority = EXCLUDED.priority, role_type = EXCLUDED.role_type,
          is_system = true, updated_at = now()
        RETURNING id
      ]], r.code, r.name, r.priority, r.role_type)[1]
      -- LIKE patterns: "user_%" is every user permission, "%" is all of them.
      local patterns = "{" .. table.concat(r.grants, ",") .. "}"
      s:exec([[
        INSERT INTO role_permissions (role_id, permission_id)
        SELECT $1, p.id FROM permissions p WHERE p.code LIKE ANY ($2::text[])
        ON CONFLICT (tenant_id, role_id, permission_id) DO NOTHING
      ]], row.id, patterns)
      s:exec([[
        DELETE FROM role_permissions rp USING permissions p
        WHERE rp.role_id = $1 AND p.id = rp.permission_id
          AND NOT p.code LIKE ANY ($2::text[])
      ]], row.id, patterns)
    end
  end,
}

-- The default user groups of the seed documents (002).
local groups = {
  { "all_members", "All members", 0 },
  { "regular_users", "Regular users", 10 },
  { "vip_users", "VIP users", 20 },
  { "premium_users", "Premium users", 30 },
}

return {
  run = function(s)
    for _, g in ipairs(groups) do
      s:exec([[
        INSERT INTO user_groups (code, name, priority, group_type)
        VALUES ($1, $2, $3, 'system')
        ON CONFLICT (tenant_id, code) DO UPDATE SET name = EXCLUDED.name,
          priority = EXCLUDED.priority, group_type = 'system', updated_at = now()
      ]], g[1], g[2], g[3])
    end
  end,
}

-- Permissions {resource}_{action} for every resource and action of the seed
-- documents (002). Idempotent: names are refreshed, nothing is duplicated.
local resources = {
  "tenant", "user", "role", "permission", "group", "menu", "board", "category",
}
local actions = { "create", "read", "update", "delete", "manage" }

return {
  run = function(s)
    for _, resource in ipairs(resources) do
      for _, action in ipairs(actions) do
        s:exec([[
          INSERT INTO permissions (code, name, resource, action)
          VALUES ($1 || '_' || $2, initcap($2) || ' ' || $1, $1, $2)
          ON CONFLICT (tenant_id, code) DO UPDATE SET name = EXCLUDED.name
        ]], resource, action)
      end
    end
  end,
}

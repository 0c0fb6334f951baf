-- Permissions {resource}_{action} for every resource and action of the seed
-- documents (002). Idempotent: names are refreshed, nothing is duplicated.
local resources = {
  "tenant", "user", "role", "permission", "group", "menu", "board", "category",
}
local actions = { "create", "read", "update", "delete", "manage" }

return {
  run = function(s)
    -- One statement for all of them: resources x actions.
    s:exec([[
      INSERT INTO permissions (code, name, resource, action)
      SELECT r || '_' || a, initcap(a) || ' ' || r, r, a
      FROM unnest($1::text[]) AS r, unnest($2::text[]) AS a
      ON CONFLICT (tenant_id, code) DO UPDATE SET name = EXCLUDED.name
    ]], "{" .. table.concat(resources, ",") .. "}",
      "{" .. table.concat(actions, ",") .. "}")
  end,
}

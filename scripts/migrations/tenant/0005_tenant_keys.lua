-- Keys are per tenant, like everything else (docs/SECURITY.md). The tables of
-- 0001 had a primary key on id alone, unique across all tenants of the shared
-- tables (and across schemas, where one tenant's rows could be written into
-- another's schema under its own tenant_id): a tenant could insert rows with
-- ids of its choosing to take the ids another tenant's inserts would get next
-- (they then failed with 23505), or to learn from a duplicate key which ids
-- exist elsewhere. UNIQUE (tenant_id, id), which every foreign key uses, is
-- now the only key on id; a lookup by id is served by it, since the policy
-- names the tenant.
local tables = {
  "users", "roles", "permissions", "role_permissions", "user_roles",
  "user_groups", "user_group_members", "menus", "boards",
}

return {
  up = function(m)
    for _, t in ipairs(tables) do
      m:exec(("ALTER TABLE %s DROP CONSTRAINT %s_pkey"):format(t, t))
    end
  end,
  down = function(m)
    for _, t in ipairs(tables) do
      m:exec(("ALTER TABLE %s ADD PRIMARY KEY (id)"):format(t))
    end
  end,
}

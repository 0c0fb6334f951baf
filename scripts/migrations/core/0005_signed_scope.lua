-- The core tables answer the request role only in a transaction signed for
-- the core (docs/SECURITY.md): the runtime's own queries and the operator's
-- platform routes. A statement in a tenant's transaction, however it is
-- spelled, sees no platform user, token, key or other tenant's directory row.
-- The owner role is not subject to these policies (they are not FORCE'd).
--
-- rt_scope comes from scripts/sql/walls.sql (run by the bootstrap).
local tables = {
  "tenants", "users", "tenant_members", "refresh_tokens", "revocations", "api_keys",
  "migration_runs", "migration_run_targets",
}

return {
  up = function(m)
    if not m:query("SELECT to_regprocedure('rt_scope.core()') IS NOT NULL AS f")[1].f then
      error("this database has no rt_scope functions: run scripts/sql/walls.sql in it "
        .. "as a superuser (docs/SECURITY.md)")
    end
    for _, t in ipairs(tables) do
      m:exec(([[
        ALTER TABLE %s ENABLE ROW LEVEL SECURITY;
        CREATE POLICY core_scope ON %s TO rt_app
          USING ((SELECT rt_scope.core())) WITH CHECK ((SELECT rt_scope.core()));
      ]]):format(t, t))
    end
  end,
  down = function(m)
    for _, t in ipairs(tables) do
      m:exec(([[
        DROP POLICY core_scope ON %s;
        ALTER TABLE %s DISABLE ROW LEVEL SECURITY;
      ]]):format(t, t))
    end
  end,
}

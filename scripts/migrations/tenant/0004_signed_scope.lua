-- The second wall behind the SQL guard (docs/SECURITY.md): every tenant
-- table's policy asks the transaction's signed scope, rt_scope.tenant_id(),
-- instead of app.tenant_id. A statement that changes app.tenant_id, app.scope
-- or search_path then reaches no other tenant's rows: only the runtime can
-- sign a scope, with the key it enrolled for the connection. The owner role
-- (migrations, seeds) still scopes itself with app.tenant_id.
--
-- rt_scope comes from scripts/sql/walls.sql, which the bootstrap runs in the
-- runtime's database and in template1 (so every tenant database has it).
-- Column defaults keep app.tenant_id: a row written with another tenant's id
-- fails the policy's WITH CHECK.
local function policies(m, expr)
  local rows = m:query [[
    SELECT tablename FROM pg_policies
    WHERE schemaname = current_schema() AND policyname = 'tenant_isolation'
    ORDER BY tablename
  ]]
  for _, row in ipairs(rows) do
    m:exec(([[ALTER POLICY tenant_isolation ON %s USING (tenant_id = %s)
               WITH CHECK (tenant_id = %s)]]):format(row.tablename, expr, expr))
  end
end

return {
  up = function(m)
    if not m:query("SELECT to_regprocedure('rt_scope.tenant_id()') IS NOT NULL AS f")[1].f then
      error("this database has no rt_scope functions: run scripts/sql/walls.sql in it "
        .. "as a superuser (docs/SECURITY.md)")
    end
    policies(m, "(SELECT rt_scope.tenant_id())")
  end,
  down = function(m)
    policies(m, "NULLIF(current_setting('app.tenant_id', true), '')::bigint")
  end,
}

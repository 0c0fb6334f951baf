-- The seed ledger: which seed files ran for this tenant, with their checksums,
-- so a changed seed file is applied again. Per tenant and under RLS like every
-- tenant table, so one ledger serves the shared tables too.
local TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::bigint"

return {
  up = function(m)
    m:exec(([[
      CREATE TABLE seed_ledger (
        tenant_id bigint NOT NULL DEFAULT %s,
        version integer NOT NULL,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, version)
      );
      ALTER TABLE seed_ledger ENABLE ROW LEVEL SECURITY;
      ALTER TABLE seed_ledger FORCE ROW LEVEL SECURITY;
      CREATE POLICY tenant_isolation ON seed_ledger
        USING (tenant_id = %s) WITH CHECK (tenant_id = %s);
      GRANT SELECT ON seed_ledger TO rt_app;
    ]]):format(TENANT, TENANT, TENANT))
  end,
  down = function(m)
    m:exec [[DROP TABLE seed_ledger]]
  end,
}

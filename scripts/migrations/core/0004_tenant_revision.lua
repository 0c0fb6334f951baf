-- Every change to what a tenant is reaches the servers (tenant.c).
--
-- Servers reload the directory when a cheap stamp over core.tenants changes.
-- The stamp used to be count(*) and max(updated_at), which missed an UPDATE
-- that left updated_at alone (psql, a script), and one whose transaction
-- started before another's but committed after it (its now() is older than
-- the max already seen). Now each row carries a revision the trigger below
-- raises on every change of the columns the directory serves, also setting
-- updated_at; the stamp is a sum of hashes of (id, revision), which changes
-- with any committed change whatever the commit order.
--
-- Migration bookkeeping (schema_version, fingerprint, migration_status, ...)
-- is not a change of the tenant: it leaves revision and updated_at alone, so
-- a fleet migration does not make every server reload its directory.
return {
  up = function(m)
    m:exec [[
      ALTER TABLE tenants ADD COLUMN revision bigint NOT NULL DEFAULT 1;

      CREATE FUNCTION tenants_revise() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF (NEW.code, NEW.name, NEW.domain, NEW.subdomain, NEW.isolation, NEW.server,
            NEW.schema_name, NEW.database_name, NEW.status, NEW.status_reason,
            NEW.settings, NEW.deleted_at)
           IS DISTINCT FROM
           (OLD.code, OLD.name, OLD.domain, OLD.subdomain, OLD.isolation, OLD.server,
            OLD.schema_name, OLD.database_name, OLD.status, OLD.status_reason,
            OLD.settings, OLD.deleted_at) THEN
          NEW.revision := OLD.revision + 1;
          NEW.updated_at := now();
        END IF;
        RETURN NEW;
      END
      $$;

      CREATE TRIGGER tenants_revise BEFORE UPDATE ON tenants
        FOR EACH ROW EXECUTE FUNCTION tenants_revise();
    ]]
  end,
  down = function(m)
    m:exec [[
      DROP TRIGGER tenants_revise ON tenants;
      DROP FUNCTION tenants_revise();
      ALTER TABLE tenants DROP COLUMN revision;
    ]]
  end,
}

-- Login state of tenant users: failed attempts and the lock they lead to
-- (per account, not per address), and case-insensitive email lookups.
return {
  up = function(m)
    m:exec [[
      ALTER TABLE users ADD COLUMN failed_logins integer NOT NULL DEFAULT 0;
      ALTER TABLE users ADD COLUMN locked_until timestamptz;
      CREATE INDEX users_email_lower ON users (tenant_id, lower(email));
    ]]
  end,
  down = function(m)
    m:exec [[
      DROP INDEX users_email_lower;
      ALTER TABLE users DROP COLUMN locked_until;
      ALTER TABLE users DROP COLUMN failed_logins;
    ]]
  end,
}

-- The database's own walls around the request role (docs/SECURITY.md).
-- Run as a superuser in every database the runtime serves from, and in
-- template1 so that tenant databases made later inherit them; `./dev`
-- runs it at bootstrap. Idempotent. psql variables: app_role, owner_role.

SET client_min_messages = warning;

-- 1. No temporary objects: a temporary table could shadow a tenant's table
--    for the next request on a pooled connection.
SELECT format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC, %I',
              current_database(), :'app_role') \gexec

-- 2. No session state that outlives a transaction, and no reaching other
--    sessions: session-level advisory locks, large objects, signalling
--    backends; no functions that run SQL text of their own (ts_stat,
--    ts_rewrite, the *_to_xml family); no reading other sessions' statements
--    or this connection's prepared statements (the runtime's names). (The
--    _xact_ advisory locks end with the transaction and stay.)
SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', p.oid::regprocedure),
       format('GRANT EXECUTE ON FUNCTION %s TO %I', p.oid::regprocedure, :'owner_role')
FROM pg_proc p
WHERE p.pronamespace = 'pg_catalog'::regnamespace
  AND (p.proname IN ('pg_advisory_lock', 'pg_advisory_lock_shared',
                     'pg_try_advisory_lock', 'pg_try_advisory_lock_shared',
                     'pg_advisory_unlock', 'pg_advisory_unlock_shared',
                     'pg_advisory_unlock_all', 'pg_cancel_backend',
                     'pg_terminate_backend', 'loread', 'lowrite', 'ts_stat',
                     'pg_prepared_statement', 'pg_stat_get_activity')
       OR (p.proname = 'ts_rewrite' AND p.pronargs = 2
           AND p.proargtypes[1] = 'text'::regtype)
       OR p.proname LIKE 'lo\_%' OR p.proname LIKE '%\_to\_xml%') \gexec
SELECT format('REVOKE ALL ON pg_catalog.%I FROM PUBLIC', v),
       format('GRANT SELECT ON pg_catalog.%I TO %I', v, :'owner_role')
FROM unnest(ARRAY['pg_prepared_statements', 'pg_stat_activity']) AS v \gexec
-- An UPDATE of pg_settings is set_config(name, value, false) by its rule.
REVOKE UPDATE ON pg_catalog.pg_settings FROM PUBLIC;

-- 3. The signed scope. A request transaction names its scope in app.scope
--    as "<scope>.<tag>": "t:<tenant id>" or "core", and a tag only the
--    runtime can make: sha256(key || scope || key) with a key the runtime
--    enrolled for this connection when it opened it (enroll() takes one key
--    per backend, once). Row-level security policies ask scope_tenant() and
--    scope_core(), never app.tenant_id, so a statement that changes
--    app.tenant_id, app.scope or search_path reaches no other tenant's rows.
-- enroll() tells a backend's own start time from an ended backend's with the
-- same pid; only a role that reads all statistics sees another role's.
SELECT format('GRANT pg_read_all_stats TO %I', :'owner_role') \gexec
CREATE SCHEMA IF NOT EXISTS rt_scope;
SELECT format('ALTER SCHEMA rt_scope OWNER TO %I', :'owner_role') \gexec
REVOKE ALL ON SCHEMA rt_scope FROM PUBLIC;
SELECT format('GRANT USAGE ON SCHEMA rt_scope TO %I', :'app_role') \gexec

CREATE TABLE IF NOT EXISTS rt_scope.enrolled (
    pid integer PRIMARY KEY,
    backend_start timestamptz NOT NULL,
    key bytea NOT NULL
);
SELECT format('ALTER TABLE rt_scope.enrolled OWNER TO %I', :'owner_role') \gexec
REVOKE ALL ON rt_scope.enrolled FROM PUBLIC;

-- Takes this backend's key (hex of 32 bytes); false if it has one already.
-- A key left by an ended backend with the same pid is replaced.
CREATE OR REPLACE FUNCTION rt_scope.enroll(key_hex text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    started timestamptz := (SELECT backend_start FROM pg_stat_activity
                            WHERE pid = pg_backend_pid());
BEGIN
    IF key_hex !~ '^[0-9a-f]{64}$' OR started IS NULL THEN
        RETURN false;
    END IF;
    DELETE FROM rt_scope.enrolled WHERE pid = pg_backend_pid() AND backend_start <> started;
    INSERT INTO rt_scope.enrolled VALUES (pg_backend_pid(), started, decode(key_hex, 'hex'))
    ON CONFLICT (pid) DO NOTHING;
    RETURN FOUND;
END $$;

-- The verified scope of this transaction, or NULL; "owner" for the owner
-- role's own sessions (migrations, seeds, the engines), which are trusted with
-- plain app.tenant_id (they own the tables anyway). Called once per statement
-- (policies use it through an InitPlan), so it is kept cheap: no SET clause;
-- every name and operator is schema-qualified instead, and the request role
-- can create nothing anywhere that could stand in for them.
CREATE OR REPLACE FUNCTION rt_scope.verified() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v text := pg_catalog.current_setting('app.scope', true);
    dot integer;
    k bytea;
BEGIN
    IF session_user OPERATOR(pg_catalog.=) current_user THEN
        RETURN 'owner';
    END IF;
    dot := pg_catalog.strpos(v, '.');
    IF dot IS NULL OR dot OPERATOR(pg_catalog.<) 2 THEN
        RETURN NULL;
    END IF;
    SELECT e.key INTO k FROM rt_scope.enrolled e
    WHERE e.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid();
    IF k IS NULL OR pg_catalog.substr(v, dot OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.<>)
        pg_catalog.encode(pg_catalog.sha256(k OPERATOR(pg_catalog.||)
            pg_catalog.convert_to(pg_catalog.substr(v, 1, dot OPERATOR(pg_catalog.-) 1), 'UTF8')
            OPERATOR(pg_catalog.||) k), 'hex') THEN
        RETURN NULL;
    END IF;
    RETURN pg_catalog.substr(v, 1, dot OPERATOR(pg_catalog.-) 1);
END $$;

-- What policies ask, once per statement: (SELECT rt_scope.tenant_id()) and
-- (SELECT rt_scope.core()).
CREATE OR REPLACE FUNCTION rt_scope.tenant_id() RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s text := rt_scope.verified();
BEGIN
    IF s OPERATOR(pg_catalog.=) 'owner' THEN
        RETURN NULLIF(pg_catalog.current_setting('app.tenant_id', true), '')::bigint;
    ELSIF s OPERATOR(pg_catalog.~~) 't:%' THEN
        RETURN pg_catalog.substr(s, 3)::bigint;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION rt_scope.core() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN COALESCE(rt_scope.verified() OPERATOR(pg_catalog.=) ANY ('{core,owner}'), false);
END $$;
SELECT format('ALTER FUNCTION rt_scope.%s OWNER TO %I', f, :'owner_role')
FROM unnest(ARRAY['enroll(text)', 'verified()', 'tenant_id()', 'core()']) AS f \gexec
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA rt_scope FROM PUBLIC;
SELECT format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rt_scope TO %I', :'app_role') \gexec

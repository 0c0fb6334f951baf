-- Runtime configuration used by bench/run.sh.
-- scripts.dir is resolved relative to this file, i.e. bench/scripts.
-- The database URL comes from RUNTIME_DATABASE_URL; run.sh overrides
-- http.port, http.threads and database.pool_size through RUNTIME_* env vars.
return {
  http = {
    host = "127.0.0.1",
    port = 18080,
    threads = 2,
  },
  database = {
    pool_size = 8,
  },
  scripts = {
    dir = "scripts",
  },
  log = {
    access = false,
  },
}

-- Runtime configuration. Every key is documented in README.md; unknown keys
-- are an error. Environment variables override these values:
-- RUNTIME_<SECTION>_<KEY>, e.g. RUNTIME_DATABASE_URL, RUNTIME_HTTP_PORT.
return {
  http = {
    host = "127.0.0.1",
    port = 8080,
    threads = 4,
    max_body = 1048576,
  },
  database = {
    -- url comes from RUNTIME_DATABASE_URL (./dev up sets it for the
    -- embedded cluster).
    pool_size = 8,
    statement_timeout_ms = 5000,
  },
  scripts = {
    dir = "scripts",
  },
  log = {
    level = "info",
    access = true,
  },
}

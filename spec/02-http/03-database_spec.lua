-- rt.db against the real database: types, transactions and rollback,
-- refused statements, error shaping, timeouts, pool limits, outages.
local h = require "helpers"

local function count(body)
  return tonumber(h.psql("SELECT count(*) FROM notes WHERE body = '" .. body .. "'"))
end

describe("rt.db", function()
  local srv
  local json_headers = { ["Content-Type"] = "application/json" }

  setup(function()
    h.psql([[
      DROP TABLE IF EXISTS notes;
      CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL UNIQUE);
      GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO rt_app;
      GRANT USAGE ON SEQUENCE notes_id_seq TO rt_app;
    ]])
    -- More threads than connections, so requests can queue for the pool.
    srv = h.start({ threads = 4, database = "statement_timeout_ms = 500, pool_size = 2, "
      .. "checkout_timeout_ms = 300" })
  end)

  teardown(function()
    srv:stop()
  end)

  it("converts column types and parameters", function()
    local r = srv:request({ path = "/types" })
    assert.equal(200, r.status)
    local j = r.json
    assert.equal(42, j.i4)
    assert.equal(true, j.yes)
    assert.equal(false, j.no)
    assert.equal(1.5, j.f)
    assert.equal("12345678901234567890.5", j.n)
    assert.equal("x", j.t)
    assert.is_true(j.nothing_is_null)
    assert.same({ a = { 1, 2 } }, j.j)
    assert.equal(7, j.p1)
    assert.equal("seven", j.p2)
    assert.equal(true, j.p3)
    assert.equal(true, j.p4_null)
    assert.equal(0.25, j.p5)
    -- int8 beyond 2^53 survives as an integer in the JSON text
    assert.matches('"i8":9007199254740993', r.body)
  end)

  it("returns row lists and affected counts", function()
    local r = srv:request({ path = "/rows" })
    assert.equal(200, r.status)
    assert.same({ { n = 1 }, { n = 2 }, { n = 3 } }, r.json.rows)
    assert.equal(5, r.json.count)
  end)

  it("commits a normal return", function()
    local r = srv:request({ method = "POST", path = "/notes", headers = json_headers,
      body = '{"body":"first"}' })
    assert.equal(201, r.status)
    assert.is_number(r.json.id)
    assert.equal(1, count("first"))
    local g = srv:request({ path = string.format("/notes/%d", r.json.id) })
    assert.equal("first", g.json.body)
  end)

  it("lets a handler map a unique violation to 409", function()
    local r = srv:request({ method = "POST", path = "/notes", headers = json_headers,
      body = '{"body":"first"}' })
    assert.equal(409, r.status)
  end)

  it("returns 422 from the handler with field names", function()
    local r = srv:request({ method = "POST", path = "/notes", headers = json_headers,
      body = '{"nobody":1}' })
    assert.equal(422, r.status)
    assert.same({ body = "required" }, r.json.fields)
  end)

  it("rolls back when the handler raises an error", function()
    local r = srv:request({ method = "POST", path = "/notes/fail/error", body = "rb-error" })
    assert.equal(500, r.status)
    assert.equal("internal_error", r.json.error)
    assert.equal(0, count("rb-error"))
  end)

  it("rolls back when the handler returns nil, err", function()
    local r = srv:request({ method = "POST", path = "/notes/fail/nil", body = "rb-nil" })
    assert.equal(500, r.status)
    assert.equal(0, count("rb-nil"))
  end)

  it("rolls back and answers 500 when a 2xx follows a failed statement", function()
    local r = srv:request({ method = "POST", path = "/notes/fail/swallow", body = "rb-swallow" })
    assert.equal(500, r.status)
    assert.equal(0, count("rb-swallow"))
  end)

  it("rolls back and keeps a handler's 4xx after a failed statement", function()
    local r = srv:request({ method = "POST", path = "/notes/fail/conflict", body = "rb-409" })
    assert.equal(409, r.status)
    assert.equal(0, count("rb-409"))
  end)

  it("runs GET handlers in a read-only transaction", function()
    local r = srv:request({ path = "/notes/on-get/ro-write",
      headers = { ["X-Request-Id"] = "ro-1" } })
    assert.equal(500, r.status)
    assert.equal(0, count("ro-write"))
    h.sleep(0.1)
    assert.matches('"request_id":"ro%-1"[^\n]*read%-only transaction', srv:logs())
  end)

  it("lets a GET route opt out of read-only with readonly = false", function()
    local r = srv:request({ path = "/notes/on-get-allowed/rw-write" })
    assert.equal(200, r.status)
    assert.equal(1, count("rw-write"))
  end)

  it("keeps serving reads on connections whose COMMIT was not awaited", function()
    for i = 1, 20 do
      local r = srv:request({ path = "/rows" })
      assert.equal(200, r.status, "request " .. i)
    end
    local r = srv:request({ method = "POST", path = "/notes", headers = json_headers,
      body = '{"body":"after-reads"}' })
    assert.equal(201, r.status)
    assert.equal(1, count("after-reads"))
  end)

  it("scopes db.transaction to a savepoint", function()
    local r = srv:request({ method = "POST", path = "/notes/savepoint", body = "sp" })
    assert.equal(200, r.status)
    assert.equal("changed my mind", r.json.inner)
    assert.is_false(r.json.raised)
    assert.is_number(r.json.kept)
    assert.equal(1, count("sp-outer"))
    assert.equal(0, count("sp-inner"))
    assert.equal(0, count("sp-raised"))
    assert.equal(1, count("sp-kept"))
  end)

  for _, what in ipairs({ "set", "begin", "commit", "reset", "multi" }) do
    it("refuses statements that escape the transaction: " .. what, function()
      local r = srv:request({ path = "/refused/" .. what, headers = { ["X-Request-Id"] = "ref-" .. what } })
      assert.equal(500, r.status)
      h.sleep(0.1)
      local logs = srv:logs()
      if what == "multi" then
        assert.matches('"request_id":"ref%-multi"[^\n]*2 statements in one call', logs)
      else
        assert.matches('"request_id":"ref%-' .. what .. '"[^\n]*not allowed', logs)
      end
    end)
  end

  it("never sends SQL or tracebacks to the client, but logs them", function()
    local r = srv:request({ path = "/sql-error", headers = { ["X-Request-Id"] = "sqlerr" } })
    assert.equal(500, r.status)
    assert.not_matches("secret_table_name", r.body)
    assert.not_matches("42P01", r.body)
    r = srv:request({ path = "/boom", headers = { ["X-Request-Id"] = "boom" } })
    assert.equal(500, r.status)
    assert.not_matches("secret", r.body)
    assert.not_matches("%.lua", r.body)
    h.sleep(0.1)
    local logs = srv:logs()
    assert.matches('"request_id":"sqlerr"[^\n]*secret_table_name', logs)
    assert.matches('"request_id":"boom"[^\n]*secret detail[^\n]*traceback', logs)
  end)

  it("reports sqlstate and kind to the handler", function()
    local r = srv:request({ path = "/sqlstate" })
    assert.equal(400, r.status)
    assert.equal("22012", r.json.sqlstate)
    assert.equal("query", r.json.kind)
    assert.matches("division by zero", r.json.message)
  end)

  it("answers 500, not 503, for more parameters than the statement uses", function()
    local r = srv:request({ path = "/extra-params/report" })
    assert.equal(400, r.status)
    assert.equal("08P01", r.json.sqlstate)
    assert.equal("query", r.json.kind)
    for _, method in ipairs({ "GET", "POST" }) do
      r = srv:request({ method = method, path = "/extra-params/return" })
      assert.equal(500, r.status, method)
      assert.equal("internal_error", r.json.error)
      assert.is_nil(r.headers["retry-after"])
    end
    -- the connections stay usable and the database is not marked down
    assert.equal(200, srv:request({ path = "/rows" }).status)
    assert.equal(200, srv:request({ path = "/readyz" }).status)
  end)

  it("answers 500 for a bad response or an unencodable value", function()
    assert.equal(500, srv:request({ path = "/bad-return" }).status)
    assert.equal(500, srv:request({ path = "/cycle" }).status)
  end)

  it("answers 504 when statement_timeout is hit", function()
    local r = srv:request({ path = "/sleep/3" })
    assert.equal(504, r.status)
    assert.equal("timeout", r.json.error)
  end)

  it("answers 504 when no pooled connection frees up in time", function()
    -- Its own server, whose slow requests outlast the pool wait by far, so the
    -- outcome does not depend on how fast this machine runs psql and curl.
    local slow = h.start({ threads = 4, database = "statement_timeout_ms = 5000, "
      .. "pool_size = 2, checkout_timeout_ms = 300" })
    -- pool_size 2: two slow requests hold both connections. Sleeps left over
    -- by other specs' servers (killed mid-request) do not count.
    local sleeping = "FROM pg_stat_activity WHERE usename = 'rt_app' "
      .. "AND query LIKE '%pg_sleep%' AND state = 'active'"
    local before = h.psql("SELECT coalesce(string_agg(pid::text, ','), '0') " .. sleeping,
      h.admin_url)
    local cmd = string.format("curl -s -o /dev/null http://127.0.0.1:%d/sleep/4 &", slow.port)
    -- One at a time: a worker thread blocked in the first cannot accept the
    -- second, so the second runs on another thread instead of queueing
    -- behind the first on the thread that took both connections.
    for n = 1, 2 do
      os.execute(cmd)
      for _ = 1, 150 do -- up to 3 s: a loaded machine (or ASan) starts slowly
        local busy = tonumber(h.psql("SELECT count(*) " .. sleeping
          .. " AND pid NOT IN (" .. before .. ")", h.admin_url))
        if busy >= n then
          break
        end
        h.sleep(0.02)
      end
    end
    local r = slow:request({ path = "/rows" })
    h.sleep(4.1)
    local after = slow:request({ path = "/rows" }).status
    slow:stop()
    assert.equal(504, r.status)
    assert.equal(200, after)
  end)

  it("replaces connections the database closed, without a failed request", function()
    assert.equal(200, srv:request({ path = "/rows" }).status)
    h.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      .. "WHERE usename = 'rt_app' AND pid <> pg_backend_pid()", h.admin_url)
    h.sleep(0.2)
    assert.equal(200, srv:request({ path = "/rows" }).status)
    assert.equal(200, srv:request({ path = "/rows" }).status)
  end)
end)

describe("database outage", function()
  local srv

  setup(function()
    h.psql("DROP DATABASE IF EXISTS rt_outage", h.admin_url)
    h.psql("CREATE DATABASE rt_outage OWNER rt_owner", h.admin_url)
    h.psql("REVOKE ALL ON DATABASE rt_outage FROM PUBLIC", h.admin_url)
    h.psql("GRANT CONNECT ON DATABASE rt_outage TO rt_app", h.admin_url)
    local url = h.app_url:gsub("/runtime$", "/rt_outage"):gsub("/runtime%?", "/rt_outage?")
    srv = h.start({ database_url = url, database = "retry_after = 7" })
  end)

  teardown(function()
    srv:stop()
    h.psql("ALTER DATABASE rt_outage ALLOW_CONNECTIONS true", h.admin_url)
    h.psql("DROP DATABASE IF EXISTS rt_outage WITH (FORCE)", h.admin_url)
  end)

  it("answers 503 with Retry-After while down and recovers without restart", function()
    assert.equal(200, srv:request({ path = "/rows" }).status)
    h.psql("ALTER DATABASE rt_outage ALLOW_CONNECTIONS false", h.admin_url)
    h.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      .. "WHERE datname = 'rt_outage'", h.admin_url)
    h.sleep(0.2)
    local r = srv:request({ path = "/rows" })
    assert.equal(503, r.status)
    assert.equal("7", r.headers["retry-after"])
    assert.equal("unavailable", r.json.error)
    assert.not_matches("rt_outage", r.body)
    local ready = srv:request({ path = "/readyz" })
    assert.equal(503, ready.status)
    h.psql("ALTER DATABASE rt_outage ALLOW_CONNECTIONS true", h.admin_url)
    h.sleep(1.2) -- the pool retries after its one-second back-off
    assert.equal(200, srv:request({ path = "/rows" }).status)
    assert.equal(200, srv:request({ path = "/readyz" }).status)
  end)
end)

describe("JSON responses", function()
  local srv

  setup(function()
    srv = h.start()
  end)

  teardown(function()
    srv:stop()
  end)

  it("keeps 64-bit integers exact and encodes empty results as []", function()
    local r = srv:request({ path = "/json-shapes" })
    assert.equal(200, r.status)
    assert.matches('"big":9007199254740993', r.body)
    assert.matches('"max":9223372036854775807', r.body)
    assert.matches('"none":%[%]', r.body)
    assert.matches('"marked":%[%]', r.body)
    assert.matches('"plain":{}', r.body)
    assert.matches('"third":0.1[,}]', r.body)
  end)

  it("decodes JSON arrays as arrays: [] comes back as [], integers as integers", function()
    local r = srv:request({ path = "/json-roundtrip" })
    assert.equal(200, r.status, r.body)
    assert.matches('"empty":%[%]', r.body)
    assert.matches('"obj":{}', r.body)
    assert.matches('"tags":%[%]', r.body)
    assert.matches('"ints":%[9007199254740993,%-3%]', r.body)
    assert.matches('"types":%["integer","integer","float"%]', r.body)
    r = srv:request({ method = "POST", path = "/json-roundtrip",
      headers = { ["Content-Type"] = "application/json" },
      body = '{"list": [], "deep": {"x": [[]]}, "n": 7}' })
    assert.equal(200, r.status, r.body)
    assert.matches('"list":%[%]', r.body)
    assert.matches('"deep":{"x":%[%[%]%]}', r.body)
    assert.matches('"type":"integer"', r.body)
  end)
end)

-- The walls between tenants (docs/SECURITY.md), tried the way a hostile
-- tenant script would: first against the SQL guard, then with the guard
-- switched off (RUNTIME_TEST_SQLGUARD=off, honoured only by test builds), where
-- the database's own privileges and the signed scope must hold by themselves.
-- Tenants in every isolation mode; each has one marker row in boards.
local h = require "helpers"
local iso = require "helpers.isolation"

local TENANTS = {
  { code = "sa", isolation = "shared" }, { code = "sb", isolation = "shared" },
  { code = "ca", isolation = "schema" }, { code = "cb", isolation = "schema" },
  { code = "da", isolation = "database" },
}

describe("isolation walls", function()
  local ctx, ids

  setup(function()
    ctx, ids = iso.tenants("isolation", TENANTS)
    h.psql("INSERT INTO core.users (email, password_hash, is_superuser) "
      .. "VALUES ('root@platform.test', 'not-a-hash', true)", ctx.owner_url)
  end)

  teardown(function()
    ctx:destroy()
  end)

  local function start(guard_off, pool)
    return iso.start(ctx, { guard_off = guard_off, pool = pool or 2, threads = 4 })
  end

  local attack = iso.attack

  -- The board names a result's rows carry.
  local function names(result)
    local out = {}
    for _, row in ipairs(result.rows or {}) do
      out[#out + 1] = row.name
    end
    table.sort(out)
    return table.concat(out, ",")
  end

  -- `runtime serve` refuses (exit 1, the reason) a role or database without
  -- the walls; each case is undone after it.
  describe("at start-up", function()
    local function serve_with(url)
      local cfg = h.config_file(("{ http = { port = %d }, scripts = { dir = %q } }")
        :format(h.free_port(), h.root .. "/spec/fixtures/isolation"))
      -- bounded: a server that wrongly starts is ended after 20 s
      local out = h.run("RUNTIME_DATABASE_URL=" .. h.sh_quote(url) .. " timeout 20 "
        .. h.sh_quote(h.bin) .. " serve --config " .. h.sh_quote(cfg) .. " 2>&1; echo \"exit=$?\"")
      os.remove(cfg)
      return out
    end
    local function admin_in_db(sql)
      h.psql(sql, require("helpers.migrate").db_url(h.admin_url, ctx.dbname))
    end

    it("refuses a superuser", function()
      local out = serve_with(require("helpers.migrate").db_url(h.admin_url, ctx.dbname))
      assert.matches("exit=1", out)
      assert.matches("superuser or has BYPASSRLS", out)
    end)

    -- each case: what breaks the wall, what mends it, what serve says
    for _, case in ipairs({
      { "a role that may create temporary tables",
        "GRANT TEMPORARY ON DATABASE %s TO rt_app",
        "REVOKE TEMPORARY ON DATABASE %s FROM rt_app", "may create temporary tables" },
      { "a role that may take session advisory locks",
        "GRANT EXECUTE ON FUNCTION pg_advisory_lock(bigint) TO rt_app",
        "REVOKE EXECUTE ON FUNCTION pg_advisory_lock(bigint) FROM rt_app",
        "session%-level advisory locks" },
      { "a database without the rt_scope functions",
        "ALTER SCHEMA rt_scope RENAME TO rt_scope_away",
        "ALTER SCHEMA rt_scope_away RENAME TO rt_scope", "no rt_scope functions" },
    }) do
      it("refuses " .. case[1], function()
        admin_in_db(case[2]:format(ctx.dbname))
        local out = serve_with(ctx.app_url)
        admin_in_db(case[3]:format(ctx.dbname))
        assert.matches("exit=1", out)
        assert.matches(case[4], out)
      end)
    end
  end)

  describe("with the guard on", function()
    local srv
    setup(function()
      srv = start(false)
    end)
    teardown(function()
      srv:stop()
    end)

    it("refuses scope changes and session state however they are spelled", function()
      local results = attack(srv, "sa", {
        ("SELECT U&\"set\\005fconfig\"('app.tenant_id', '%d', true)"):format(ids.sb),
        "SELECT pg_catalog.set_config('search_path', 't_cb', false)",
        "SELECT * FROM boards, LATERAL set_config('app.tenant_id', '1', true)",
        "WITH x AS (SELECT set_config('app.scope', '', false)) SELECT * FROM x",
        "CREATE TEMP TABLE boards (name text)",
        "SELECT 1 INTO TEMP boards",
        "SELECT pg_advisory_lock(1)",
        "SET search_path TO t_cb",
        "SELECT 1; SELECT 2",
      })
      for i, r in ipairs(results) do
        assert.is_string(r.refused, "statement " .. i .. " was not refused")
        assert.matches("is not allowed in a request statement", r.refused)
      end
    end)

    it("answers a syntax error as PostgreSQL would, with SQLSTATE 42601", function()
      local r = attack(srv, "sa", { "SELEC name FROM boards" })[1]
      assert.equal("42601", r.sqlstate)
      assert.matches("syntax error", r.error)
    end)
  end)

  describe("with the guard off", function()
    local srv
    setup(function()
      srv = start(true)
    end)
    teardown(function()
      srv:stop()
    end)

    it("really runs without the guard", function()
      local r = attack(srv, "sa", { "SELECT set_config('x.y', 'z', true) AS v" })[1]
      assert.is_nil(r.refused)
      assert.equal("z", r.rows[1].v)
    end)

    it("keeps a shared tenant in its scope whatever it sets", function()
      local results = attack(srv, "sa", {
        "SELECT name FROM boards",
        ("SELECT set_config('app.tenant_id', '%d', true)"):format(ids.sb),
        "SELECT name FROM boards",
        "SELECT name FROM shared.boards",
        ("SELECT set_config('app.scope', 't:%d.' || split_part(current_setting('app.scope'), "
          .. "'.', 2), true)"):format(ids.sb),
        "SELECT name FROM boards",
        "SELECT set_config('app.scope', '', true)",
        "SELECT name FROM shared.boards",
      })
      -- its own rows only, whatever app.tenant_id says
      assert.equal("marker-sa", names(results[1]))
      assert.equal("marker-sa", names(results[3]))
      assert.equal("marker-sa", names(results[4]))
      -- a forged or dropped scope sees nothing at all
      assert.equal("", names(results[6]))
      assert.equal("", names(results[8]))
    end)

    it("keeps a schema tenant out of other schemas and the shared tables", function()
      local results = attack(srv, "ca", {
        "SELECT name FROM boards",
        "SELECT name FROM t_cb.boards",
        "SELECT name FROM shared.boards",
        ("SELECT set_config('search_path', 't_cb', true), set_config('app.tenant_id', '%d', "
          .. "true)"):format(ids.cb),
        "SELECT name FROM boards",
      })
      assert.equal("marker-ca", names(results[1]))
      assert.equal("", names(results[2]))
      assert.equal("", names(results[3]))
      assert.equal("", names(results[5]))
    end)

    it("shows a tenant no platform users, tokens or directory rows", function()
      for _, code in ipairs({ "sa", "ca" }) do
        local results = attack(srv, code, {
          "SELECT email AS name FROM core.users",
          "SELECT code AS name FROM core.tenants",
          "SELECT jti AS name FROM core.revocations",
          "INSERT INTO core.revocations (kind, jti, expires_at) VALUES ('jti', 'x', now()) "
          .. "RETURNING jti",
        })
        assert.equal("", names(results[1]), code)
        assert.equal("", names(results[2]), code)
        assert.equal("", names(results[3]), code)
        assert.is_string(results[4].error, code)
      end
    end)

    it("leaves no way to temporary objects, session locks or the scope key", function()
      local results = attack(srv, "sa", {
        "CREATE TEMP TABLE boards (name text)",
        "SELECT 1 AS name INTO TEMP boards",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock_shared(1, 2)",
        "SELECT lo_from_bytea(0, 'x')",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        "SELECT * FROM rt_scope.enrolled",
        "SELECT rt_scope.enroll(repeat('ab', 32)) AS again",
        "SET ROLE rt_owner",
      })
      for i = 1, 7 do
        assert.equal("42501", results[i].sqlstate, "statement " .. i)
      end
      assert.is_false(results[8].rows[1].again)
      assert.is_string(results[9].error)
    end)

    it("keeps a database tenant in its own database", function()
      local results = attack(srv, "da", {
        "SELECT name FROM boards",
        "SELECT set_config('app.tenant_id', '1', true)",
        "SELECT name FROM boards",
      })
      assert.equal("marker-da", names(results[1]))
      assert.equal("marker-da", names(results[3]))
    end)
  end)

  -- 200 clients, every tenant in turn, each request first planting what
  -- session state it can; every answer must carry its own tenant's marker.
  describe("marker soak", function()
    local script = h.root .. "/spec/fixtures/isolation/soak.lua"
    local codes = {}
    for _, t in ipairs(TENANTS) do
      codes[#codes + 1] = t.code
    end

    local function soak(guard_off, pool)
      local srv = start(guard_off, pool)
      local total, mismatches, failures = 0, 0, 0
      -- bounded: at most four 3-second runs, until 10,000 answers
      for _ = 1, 4 do
        local out = h.run(("SOAK_TENANTS=%s wrk -t2 -c200 -d3s --timeout 10s -s %s "
          .. "http://127.0.0.1:%d/iso/marker?plant=1 2>&1"):format(table.concat(codes, ","),
          h.sh_quote(script), srv.port))
        local n, m, f = out:match("soak: (%d+) answers, (%d+) mismatches, (%d+) failures")
        assert(n, "no soak summary:\n" .. out)
        total, mismatches, failures = total + n, mismatches + m, failures + f
        if total >= 10000 then
          break
        end
      end
      srv:stop()
      return total, mismatches, failures
    end

    for _, case in ipairs({ { false, 1 }, { false, 8 }, { true, 1 }, { true, 8 } }) do
      it(("answers every tenant its own rows: guard %s, pool of %d")
        :format(case[1] and "off" or "on", case[2]), function()
        local total, mismatches, failures = soak(case[1], case[2])
        assert.is_true(total >= 10000, "only " .. total .. " answers")
        assert.equal(0, mismatches)
        assert.equal(0, failures)
      end)
    end
  end)
end)

-- Platform tenant administration (seeds 002 and 004): the 004 curl examples,
-- the directory CRUD, lifecycle, per-tenant migrations and seeds, recorded
-- fleet runs, and who may call these routes.
local platform = require "helpers.platform"
local mig = require "helpers.migrate"

-- the number of files in scripts/migrations/tenant
local TENANT_HEAD = mig.TENANT_HEAD

describe("tenants API", function()
  local env, admin

  setup(function()
    env = platform.new("platform_tenants")
    admin = env:admin_token()
  end)

  teardown(function()
    if env then
      env:destroy()
    end
  end)

  local function call(method, path, body)
    return env:call(method, path, admin, body)
  end

  local function id_of(code)
    return tonumber(env.ctx:sql("SELECT id FROM core.tenants WHERE code = '" .. code .. "'"))
  end

  describe("POST /api/v1/tenants", function()
    it("accepts the seed 004 body and answers with its shape", function()
      local r = call("POST", "/api/v1/tenants", {
        tenant_name = "Demo Church", domain = "demo-church",
        email = "admin@demo-church.com", tenant_type = "church",
        provision_schema = true, run_migrations = true,
      })
      assert.equal(201, r.status, r.body)
      assert.is_true(r.json.schema_created)
      assert.is_true(r.json.migrations_applied)
      assert.same({ schema_provisioned = true, migrations_applied = true,
        current_revision = TENANT_HEAD }, r.json.migration_status)
      assert.is_string(r.json.message)
      local t = r.json.tenant
      assert.equal("demo_church", t.code)
      assert.equal("Demo Church", t.tenant_name)
      assert.equal("demo-church", t.domain)
      assert.equal("t_demo_church", t.schema_name)
      assert.is_true(t.schema_provisioned)
      assert.is_true(t.migrations_applied)
      assert.equal("active", t.status)
      assert.same({ tenant_type = "church", admin_email = "admin@demo-church.com" },
        t.settings)
      assert.equal("/api/v1/tenants/" .. t.id, r.headers.location)
    end)

    it("refuses provision_schema or run_migrations false: provisioning is atomic", function()
      local r = call("POST", "/api/v1/tenants", { tenant_name = "Half Made",
        provision_schema = false, run_migrations = false })
      assert.equal(422, r.status, r.body)
      assert.equal("unsupported", r.json.error)
      assert.is_string(r.json.fields.provision_schema)
      assert.is_string(r.json.fields.run_migrations)
      assert.equal("0", env.ctx:sql("SELECT count(*) FROM core.tenants WHERE code = "
        .. "'half_made'"))
    end)

    it("accepts the seed 002 body; an admin_email of a platform user makes them owner",
      function()
        env:core_user("owner@site-a.com", "owner-password-1")
        env:owns_database("sitea")
        local r = call("POST", "/api/v1/tenants", { tenant_code = "siteA",
          tenant_name = "Site A", domain = "siteA.com", subdomain = "sitea",
          admin_email = "owner@site-a.com", isolation = "database" })
        assert.equal(201, r.status, r.body)
        assert.equal("sitea", r.json.tenant.code)
        assert.equal("sitea.com", r.json.tenant.domain)
        assert.equal("database", r.json.tenant.isolation)
        assert.equal("t_sitea", r.json.tenant.database_name)
        assert.is_string(env:tenant_login("sitea", "owner@site-a.com", "owner-password-1"))
        local orgs = env:call("GET", "/api/v1/organizations/me",
          env:login("owner@site-a.com", "owner-password-1"))
        assert.equal("sitea", orgs.json[1].code)
      end)

    it("creates the admin user from admin_email and admin_password (shared mode)",
      function()
        local r = call("POST", "/api/v1/tenants", { code = "shop", name = "Shop",
          isolation = "shared", admin_email = "boss@shop.test",
          admin_password = "boss-password-1" })
        assert.equal(201, r.status, r.body)
        assert.equal("shared", r.json.tenant.isolation)
        assert.is_string(env:tenant_login("shop", "boss@shop.test", "boss-password-1"))
      end)

    it("answers 409 for a taken code or domain, 422 for bad fields", function()
      local r = call("POST", "/api/v1/tenants", { tenant_name = "Demo Church" })
      assert.equal(409, r.status, r.body)
      r = call("POST", "/api/v1/tenants", { code = "other", domain = "demo-church" })
      assert.equal(409, r.status, r.body)
      assert.equal("0", env.ctx:sql("SELECT count(*) FROM core.tenants WHERE code = 'other'"))
      r = call("POST", "/api/v1/tenants", { code = "1bad" })
      assert.equal(422, r.status)
      assert.is_string(r.json.fields.code)
      r = call("POST", "/api/v1/tenants", { code = "okcode", domain = "bad domain" })
      assert.equal(422, r.status)
      assert.is_string(r.json.fields.domain)
      r = call("POST", "/api/v1/tenants", { code = "okcode", unknown = 1 })
      assert.equal(422, r.status)
      assert.equal("is not allowed", r.json.fields.unknown)
      r = call("POST", "/api/v1/tenants", { code = "okcode", admin_email = "x@y.test",
        admin_password = "short" })
      assert.equal(422, r.status)
      assert.is_string(r.json.fields.admin_password)
    end)
  end)

  describe("reads", function()
    it("lists with skip and limit", function()
      local r = call("GET", "/api/v1/tenants?skip=0&limit=2")
      assert.equal(200, r.status, r.body)
      assert.equal(2, #r.json)
      assert.equal("3", r.headers["x-total-count"])
      local rest = call("GET", "/api/v1/tenants?skip=2&limit=100")
      assert.equal(1, #rest.json)
      assert.are_not.equal(r.json[1].code, rest.json[1].code)
      assert.equal(422, call("GET", "/api/v1/tenants?limit=0").status)
      assert.equal(422, call("GET", "/api/v1/tenants?skip=x").status)
    end)

    it("gets one by id and by code, 404 otherwise", function()
      local id = id_of("demo_church")
      local r = call("GET", "/api/v1/tenants/" .. id)
      assert.equal(200, r.status, r.body)
      assert.equal("demo_church", r.json.code)
      assert.equal("demo_church", r.json.tenant_code)
      r = call("GET", "/api/v1/tenants/code/demo_church")
      assert.equal(200, r.status)
      assert.equal(id, r.json.id)
      assert.equal(404, call("GET", "/api/v1/tenants/999999").status)
      assert.equal(404, call("GET", "/api/v1/tenants/code/nope").status)
      assert.equal(404, call("GET", "/api/v1/tenants/code/Bad%20Code").status)
    end)

    it("never shows password hashes", function()
      local r = call("GET", "/api/v1/tenants")
      assert.is_nil(r.body:find("argon2", 1, true))
    end)
  end)

  describe("PATCH", function()
    it("updates name, subdomain and settings (a merge patch)", function()
      local id = id_of("demo_church")
      local r = env:call("PATCH", "/api/v1/tenants/" .. id, admin, '{"name": "Demo Chapel", '
        .. '"subdomain": "chapel", "settings": {"theme": "dark", "admin_email": null}}')
      assert.equal(200, r.status, r.body)
      assert.equal("Demo Chapel", r.json.name)
      assert.equal("chapel", r.json.subdomain)
      assert.equal("dark", r.json.settings.theme)
      assert.equal("church", r.json.settings.tenant_type)
      assert.is_nil(r.json.settings.admin_email)
    end)

    it("clears a domain with null and refuses a taken one with 409", function()
      local id = id_of("demo_church")
      local r = env:call("PATCH", "/api/v1/tenants/" .. id, admin, '{"subdomain": null}')
      assert.equal(200, r.status, r.body)
      assert.is_nil(r.json.subdomain)
      r = call("PATCH", "/api/v1/tenants/" .. id, { domain = "sitea.com" })
      assert.equal(409, r.status, r.body)
      r = call("PATCH", "/api/v1/tenants/" .. id, { status = "active" })
      assert.equal(422, r.status)
    end)
  end)

  describe("lifecycle", function()
    it("suspends a tenant: its routes answer 403 tenant_suspended; activate restores",
      function()
        local id = id_of("shop")
        local token = env:tenant_login("shop", "boss@shop.test", "boss-password-1")
        local r = call("POST", "/api/v1/tenants/" .. id .. "/suspend")
        assert.equal(200, r.status, r.body)
        assert.equal("suspended", r.json.status)
        platform.eventually(function()
          local res = env:call("GET", "/api/v1/auth/me", token, nil,
            { ["X-Tenant-Id"] = "shop" })
          return res.status == 403 and res.json.error == "tenant_suspended"
        end, "the suspension")
        -- a login answers as for a wrong password: anonymous callers cannot
        -- tell a suspended tenant from an unknown one
        local res = env:call("POST", "/api/v1/auth/login", nil,
          { username = "boss@shop.test", password = "boss-password-1" },
          { ["X-Tenant-Id"] = "shop" })
        assert.equal(401, res.status, res.body)
        r = call("POST", "/api/v1/tenants/" .. id .. "/activate")
        assert.equal(200, r.status, r.body)
        assert.equal("active", r.json.status)
        assert.is_string(env:tenant_login("shop", "boss@shop.test", "boss-password-1"))
      end)

    it("soft-deletes: the row stays, marked deleted, and the tenant stops answering",
      function()
        local r = call("POST", "/api/v1/tenants", { code = "doomed" })
        assert.equal(201, r.status, r.body)
        local id = r.json.tenant.id
        r = call("DELETE", "/api/v1/tenants/" .. id)
        assert.equal(200, r.status, r.body)
        assert.equal("deleted", r.json.status)
        assert.is_string(r.json.deleted_at)
        assert.equal("1", env.ctx:sql("SELECT count(*) FROM pg_namespace WHERE nspname = "
          .. "'t_doomed'"))
        -- not listed by default, listed on request
        local list = call("GET", "/api/v1/tenants?limit=1000")
        for _, t in ipairs(list.json) do
          assert.are_not.equal("doomed", t.code)
        end
        assert.equal(1, #call("GET", "/api/v1/tenants?status=deleted").json)
        -- a deleted tenant cannot be suspended, migrated or re-seeded
        assert.equal(409, call("POST", "/api/v1/tenants/" .. id .. "/suspend").status)
        assert.equal(409, call("POST", "/api/v1/tenants/" .. id .. "/seed").status)
      end)

    it("purges on request: storage and row are gone", function()
      local id = id_of("doomed")
      local r = call("DELETE", "/api/v1/tenants/" .. id .. "?purge=true")
      assert.equal(200, r.status, r.body)
      assert.is_true(r.json.purged)
      assert.equal("0", env.ctx:sql("SELECT count(*) FROM pg_namespace WHERE nspname = "
        .. "'t_doomed'"))
      assert.equal("0", env.ctx:sql("SELECT count(*) FROM core.tenants WHERE code = "
        .. "'doomed'"))
      assert.equal(404, call("GET", "/api/v1/tenants/" .. id).status)
      assert.equal(404, call("DELETE", "/api/v1/tenants/" .. id).status)
    end)
  end)

  describe("provisioning and migrations (seed 004)", function()
    it("provision-schema: 409 for a provisioned tenant, force_recreate rebuilds it",
      function()
        local id = id_of("demo_church")
        local r = call("POST", "/api/v1/tenants/provision-schema",
          { tenant_id = tostring(id), force_recreate = false })
        assert.equal(409, r.status, r.body)
        r = call("POST", "/api/v1/tenants/provision-schema",
          { tenant_id = id, force_recreate = true })
        assert.equal(200, r.status, r.body)
        assert.is_true(r.json.schema_created)
        assert.equal(TENANT_HEAD, r.json.migration_status.current_revision)
        assert.equal("active", r.json.tenant.status)
        -- the settings survive; the storage is new
        assert.equal("church", r.json.tenant.settings.tenant_type)
      end)

    it("provision-schema provisions a failed tenant (seed 004 workflow 2)", function()
      env.ctx:sql("INSERT INTO core.tenants (code, name, isolation, schema_name, status) "
        .. "VALUES ('later', 'Later', 'schema', 't_later', 'failed')")
      local r = call("POST", "/api/v1/tenants/provision-schema", { tenant_id = "later" })
      assert.equal(200, r.status, r.body)
      assert.equal("active", r.json.tenant.status)
      assert.equal("1", env.ctx:sql("SELECT count(*) FROM pg_namespace WHERE nspname = "
        .. "'t_later'"))
      assert.equal(404, call("POST", "/api/v1/tenants/provision-schema",
        { tenant_id = 999999 }).status)
      assert.equal(422, call("POST", "/api/v1/tenants/provision-schema", {}).status)
    end)

    it("migration-status: current revision, pending list and drift", function()
      local r = call("GET", "/api/v1/tenants/" .. id_of("later") .. "/migration-status")
      assert.equal(200, r.status, r.body)
      assert.equal(TENANT_HEAD, r.json.current_revision)
      assert.equal(TENANT_HEAD, r.json.head)
      assert.equal("t_later", r.json.schema_name)
      assert.same({}, r.json.pending_migrations)
      assert.equal("[]", r.body:match('"pending_migrations":(%b[])'))
      assert.same({}, r.json.drift)
      assert.is_false(r.json.dirty)
      assert.is_true(r.json.schema_provisioned)
      assert.is_true(r.json.migrations_applied)
    end)

    it("run-migrations: a dry run changes nothing, down and up move the ledger", function()
      local id = id_of("later")
      local r = call("POST", "/api/v1/tenants/run-migrations",
        { tenant_id = tostring(id), target_revision = 1, dry_run = true })
      assert.equal(200, r.status, r.body)
      assert.is_true(r.json.ok)
      assert.equal("down", r.json.cmd)
      assert.is_true(r.json.report.dry_run)
      assert.equal(TENANT_HEAD - 1, #r.json.report.targets[1].applied)
      -- step durations as `runtime migrate --json` gives them: one decimal
      assert.truthy(r.body:find('"duration_ms":', 1, true))
      assert.is_nil(r.body:match('"duration_ms":%-?%d+%.%d%d'))
      assert.equal(tostring(TENANT_HEAD), env.ctx:sql("SELECT max(version) FROM "
        .. "t_later.schema_migrations"))

      r = call("POST", "/api/v1/tenants/run-migrations", { tenant_id = id, target_revision = 1 })
      assert.equal(200, r.status, r.body)
      assert.equal("1", env.ctx:sql("SELECT max(version) FROM t_later.schema_migrations"))
      r = call("GET", "/api/v1/tenants/" .. id .. "/migration-status")
      assert.equal(1, r.json.current_revision)
      local pending = {}
      for v = 2, TENANT_HEAD do
        pending[#pending + 1] = v
      end
      assert.same(pending, r.json.pending_migrations)
      assert.is_false(r.json.migrations_applied)

      r = call("POST", "/api/v1/tenants/run-migrations", { tenant_id = "later",
        target_revision = "head" })
      assert.equal(200, r.status, r.body)
      assert.equal("up", r.json.cmd)
      assert.equal(tostring(TENANT_HEAD), env.ctx:sql("SELECT schema_version FROM "
        .. "core.tenants WHERE code = 'later'"))
    end)

    it("run-migrations refuses a target beyond head, a bad one, and shared tenants", function()
      local r = call("POST", "/api/v1/tenants/run-migrations",
        { tenant_id = "later", target_revision = TENANT_HEAD + 5 })
      assert.equal(422, r.status, r.body)
      r = call("POST", "/api/v1/tenants/run-migrations",
        { tenant_id = "later", target_revision = "3da2eb3bee79" })
      assert.equal(422, r.status, r.body)
      r = call("POST", "/api/v1/tenants/run-migrations", { tenant_id = "shop" })
      assert.equal(422, r.status, r.body)
      assert.equal("shared_tenant", r.json.error)
    end)

    it("rolls back by steps and re-seeds", function()
      local id = id_of("later")
      local r = call("POST", "/api/v1/tenants/" .. id .. "/rollback", { steps = 1 })
      assert.equal(200, r.status, r.body)
      assert.equal(tostring(TENANT_HEAD - 1), env.ctx:sql("SELECT max(version) FROM "
        .. "t_later.schema_migrations"))
      assert.equal(200, call("POST", "/api/v1/tenants/run-migrations",
        { tenant_id = id }).status)
      -- the ledger went with step 2 (run-migrations to 1 above): all four apply
      r = call("POST", "/api/v1/tenants/" .. id .. "/seed")
      assert.equal(200, r.status, r.body)
      assert.equal(4, r.json.applied + r.json.skipped)
      r = call("POST", "/api/v1/tenants/" .. id .. "/seed")
      assert.equal(200, r.status, r.body)
      assert.equal(0, r.json.applied)
      assert.equal(4, r.json.skipped)
    end)
  end)

  describe("fleet runs", function()
    it("runs a fleet migration and keeps its per-target results readable", function()
      -- one tenant behind, so the run has work to do
      assert.equal(200, call("POST", "/api/v1/tenants/run-migrations",
        { tenant_id = "later", target_revision = 2 }).status)
      local r = call("POST", "/api/v1/tenants/migrations", { dry_run = false })
      assert.equal(201, r.status, r.body)
      assert.is_true(r.json.ok)
      assert.equal(1, r.json.migrated)
      local run_id = r.json.id
      assert.equal("/api/v1/tenants/migrations/" .. run_id, r.headers.location)

      r = call("GET", "/api/v1/tenants/migrations/" .. run_id)
      assert.equal(200, r.status, r.body)
      assert.is_false(r.json.dry_run)
      local by = {}
      for _, t in ipairs(r.json.targets) do
        by[t.target] = t
      end
      assert.equal("up_to_date", by.core.status)
      assert.equal("[]", r.body:match('"applied":(%b[])'))
      local later = by["tenant:later"]
      assert.equal(2, later.from_version)
      assert.equal(TENANT_HEAD, later.to_version)
      assert.equal(3, later.applied[1].version)
      assert.equal(TENANT_HEAD, later.applied[#later.applied].version)

      r = call("GET", "/api/v1/tenants/migrations")
      assert.equal(200, r.status)
      assert.equal(run_id, r.json[1].id)
      assert.equal(404, call("GET", "/api/v1/tenants/migrations/999999").status)
    end)

    it("records a dry run as one", function()
      local r = env:call("POST", "/api/v1/tenants/migrations", admin, { dry_run = true })
      assert.equal(201, r.status, r.body)
      assert.is_true(r.json.dry_run)
      assert.equal(0, r.json.migrated)
    end)
  end)

  describe("access", function()
    local routes = {
      { "GET", "/api/v1/tenants" },
      { "POST", "/api/v1/tenants", { code = "intruder" } },
      { "GET", "/api/v1/tenants/1" },
      { "PATCH", "/api/v1/tenants/1", { name = "x" } },
      { "DELETE", "/api/v1/tenants/1" },
      { "POST", "/api/v1/tenants/1/suspend" },
      { "POST", "/api/v1/tenants/provision-schema", { tenant_id = 1 } },
      { "POST", "/api/v1/tenants/run-migrations", { tenant_id = 1 } },
      { "GET", "/api/v1/tenants/1/migration-status" },
      { "POST", "/api/v1/tenants/migrations" },
    }

    it("needs a token: 401 without one", function()
      for _, rt in ipairs(routes) do
        local r = env:call(rt[1], rt[2], nil, rt[3])
        assert.equal(401, r.status, rt[1] .. " " .. rt[2])
      end
    end)

    it("refuses platform users who are not superusers and tenant tokens: 403", function()
      local plain = env:core_user("plain@example.com", "plain-password-1")
      local tenant_token = env:login("boss@shop.test", "boss-password-1", "shop")
      for _, rt in ipairs(routes) do
        local r = env:call(rt[1], rt[2], plain, rt[3])
        assert.equal(403, r.status, rt[1] .. " " .. rt[2])
        r = env:call(rt[1], rt[2], tenant_token, rt[3], { ["X-Tenant-Id"] = "shop" })
        assert.equal(403, r.status, rt[1] .. " " .. rt[2])
      end
      assert.equal("0", env.ctx:sql("SELECT count(*) FROM core.tenants WHERE code = "
        .. "'intruder'"))
      assert.equal("active", env.ctx:sql("SELECT status FROM core.tenants WHERE id = 1"))
    end)
  end)
end)

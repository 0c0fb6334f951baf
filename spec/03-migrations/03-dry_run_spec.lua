-- --dry-run executes the pending steps inside a transaction it rolls back:
-- it reports and prints what it would do, and leaves no trace anywhere, the
-- directory included. Non-transactional steps are reported as skipped.
local mig = require "helpers.migrate"

local STEPS = {
  ["0001_items.lua"] = [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL)]]
  end,
  down = function(m)
    m:exec [[DROP TABLE items]]
  end,
}
]=],
  ["0002_price.lua"] = [=[
return {
  up = function(m)
    m:exec [[ALTER TABLE items ADD COLUMN dry_run_price numeric]]
  end,
  down = function(m)
    m:exec [[ALTER TABLE items DROP COLUMN dry_run_price]]
  end,
}
]=],
}

local CONCURRENT = [=[
return {
  transaction = false,
  up = function(m)
    m:exec [[CREATE INDEX CONCURRENTLY items_title_idx ON items (title)]]
  end,
  down = function(m)
    m:exec [[DROP INDEX CONCURRENTLY items_title_idx]]
  end,
}
]=]

describe("migrate --dry-run", function()
  local ctx

  setup(function()
    ctx = mig.new("dry_run")
    ctx:tenant_steps(STEPS)
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("dry-runs core without creating anything", function()
    local res = ctx:migrate("up --core --dry-run --json")
    assert.equal(0, res.code, mig.explain(res))
    assert.is_true(res.json.dry_run, mig.explain(res))
    assert.matches("CREATE TABLE tenants", res.output)
    assert.is_false(ctx:exists("core.schema_migrations"))
    assert.is_false(ctx:exists("core.tenants"))
    assert.is_false(ctx:schema_exists("core"))
  end)

  describe("of tenant steps", function()
    local before

    setup(function()
      local res = ctx:migrate("up --core")
      assert.equal(0, res.code, mig.explain(res))
      ctx:add_tenants({ "t01", "t02" })
      ctx:write_step("tenant", "0003_title_index.lua", CONCURRENT)
      before = ctx:rows("SELECT code, schema_version, fingerprint, migration_status, "
        .. "migrated_at, last_migration_at, last_migration_error, updated_at "
        .. "FROM core.tenants ORDER BY code")
    end)

    it("reports the steps it would apply", function()
      local res = ctx:migrate("--dry-run --json")
      assert.equal(0, res.code, mig.explain(res))
      assert.is_table(res.json, mig.explain(res))
      assert.is_true(res.json.dry_run)
      local shared = mig.find(res.json.targets, "target", "shared")
      assert.is_table(shared, mig.explain(res))
      assert.equal(0, shared.from)
      local applied = mig.versions_of(shared.applied)
      assert.equal(1, applied[1], mig.explain(res))
      assert.equal(2, applied[2], mig.explain(res))
      -- the statements it ran are printed
      assert.matches("CREATE TABLE items", res.output)
      assert.matches("ADD COLUMN dry_run_price", res.output)
      -- the step that cannot run in a transaction is reported, not run
      assert.is_nil(applied[3], mig.explain(res))
      local said = res.output:lower()
      assert.is_truthy(said:find("skip", 1, true)
        or said:find("cannot run in a transaction", 1, true), mig.explain(res))
    end)

    it("leaves no ledger, no schema and no table", function()
      for _, schema in ipairs({ "shared", "t_t01", "t_t02" }) do
        assert.is_false(ctx:exists(schema .. ".schema_migrations"), schema)
        assert.is_false(ctx:exists(schema .. ".items"), schema)
        assert.is_false(ctx:schema_exists(schema), schema)
      end
    end)

    it("leaves the directory unchanged", function()
      assert.same(before, ctx:rows("SELECT code, schema_version, fingerprint, migration_status, "
        .. "migrated_at, last_migration_at, last_migration_error, updated_at "
        .. "FROM core.tenants ORDER BY code"))
      local t = ctx:tenant("t01")
      assert.equal(0, t.schema_version)
      assert.is_nil(t.last_migration_at)
      assert.is_nil(t.migrated_at)
      assert.is_nil(t.fingerprint)
    end)

    it("dry-runs a single tenant without a trace", function()
      local res = ctx:migrate("up --tenant t01 --dry-run --json")
      assert.equal(0, res.code, mig.explain(res))
      assert.is_true(res.json.dry_run)
      assert.matches("CREATE TABLE items", res.output)
      assert.is_false(ctx:schema_exists("t_t01"))
      assert.equal(0, ctx:tenant("t01").schema_version)
    end)

    it("then applies everything on a real run", function()
      local res = ctx:migrate("--json")
      assert.equal(0, res.code, mig.explain(res))
      assert.is_false(res.json.dry_run)
      for _, schema in ipairs({ "shared", "t_t01", "t_t02" }) do
        assert.same({ 1, 2, 3 }, ctx:versions(schema), schema)
        assert.is_true(ctx:exists(schema .. ".items_title_idx"), schema)
      end
      local t = ctx:tenant("t01")
      assert.equal(3, t.schema_version)
      assert.is_string(t.last_migration_at)
    end)

    it("dry-runs a down without a trace", function()
      ctx:add_tenants({ "t03" })
      local res = ctx:migrate("up --tenant t03 --to 2 --json")
      assert.equal(0, res.code, mig.explain(res))
      assert.same({ 1, 2 }, ctx:versions("t_t03"))
      res = ctx:migrate("down --tenant t03 --to 0 --dry-run --json")
      assert.equal(0, res.code, mig.explain(res))
      assert.is_true(res.json.dry_run)
      assert.matches("DROP COLUMN dry_run_price", res.output)
      assert.matches("DROP TABLE items", res.output)
      assert.same({ 1, 2 }, ctx:versions("t_t03"))
      assert.is_true(ctx:exists("t_t03.items"))
      assert.equal(2, ctx:tenant("t03").schema_version)
    end)
  end)
end)

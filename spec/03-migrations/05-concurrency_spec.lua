-- Safety under concurrency and crashes: two migrators never apply a step
-- twice (lock per target), and a migrator killed in the middle of a step
-- leaves that target at its previous version.
local h = require "helpers"
local mig = require "helpers.migrate"

describe("two concurrent migrators", function()
  local ctx, a, b
  local codes = mig.codes("c", 5)

  setup(function()
    ctx = mig.new("concurrent")
    ctx:tenant_steps({
      ["0001_items.lua"] = [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE items (id bigint PRIMARY KEY)]]
  end,
  down = function(m)
    m:exec [[DROP TABLE items]]
  end,
}
]=],
      ["0002_count.lua"] = [=[
return {
  up = function(m)
    m:exec("INSERT INTO public.runs (target) VALUES ($1)",
      m.tenant and m.tenant.code or m.target)
    m:exec [[SELECT pg_sleep(0.2)]]
  end,
  down = false,
}
]=],
    })
    local res = ctx:migrate("up --core")
    assert.equal(0, res.code, mig.explain(res))
    ctx:add_tenants(codes)
    ctx:sql("CREATE TABLE public.runs (target text NOT NULL, at timestamptz DEFAULT now())")
    local p1 = ctx:spawn("--json")
    local p2 = ctx:spawn("--json")
    a = ctx:wait(p1, 60)
    b = ctx:wait(p2, 60)
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("both exit 0", function()
    assert.equal(0, a.code, mig.explain(a))
    assert.equal(0, b.code, mig.explain(b))
  end)

  it("ran each step once per target", function()
    local rows = ctx:rows("SELECT target, count(*) AS n FROM public.runs GROUP BY target "
      .. "ORDER BY target")
    local expected = {}
    for i, code in ipairs(codes) do
      expected[i] = { target = code, n = 1 }
    end
    expected[#expected + 1] = { target = "shared", n = 1 }
    assert.same(expected, rows)
  end)

  it("wrote one ledger row per version per target", function()
    for _, schema in ipairs({ "shared", "t_c01", "t_c02", "t_c03", "t_c04", "t_c05" }) do
      assert.same({ 1, 2 }, ctx:versions(schema), schema)
    end
  end)

  it("reports each step as applied by exactly one of them", function()
    local seen = {}
    for _, res in ipairs({ a, b }) do
      assert.is_table(res.json, mig.explain(res))
      for _, t in ipairs(res.json.targets) do
        for _, v in ipairs(mig.versions_of(t.applied)) do
          local key = t.target .. "@" .. v
          seen[key] = (seen[key] or 0) + 1
        end
      end
    end
    local expected = { ["shared@1"] = 1, ["shared@2"] = 1 }
    for _, code in ipairs(codes) do
      expected["tenant:" .. code .. "@1"] = 1
      expected["tenant:" .. code .. "@2"] = 1
    end
    assert.same(expected, seen)
  end)

  it("leaves the directory at head for every tenant", function()
    local rows = ctx:rows("SELECT code, schema_version, migration_status FROM core.tenants "
      .. "ORDER BY code")
    assert.equal(5, #rows)
    for _, r in ipairs(rows) do
      assert.same({ code = r.code, schema_version = 2, migration_status = "ok" }, r)
    end
  end)

  it("leaves no locks behind", function()
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.equal(0, res.json.fleet.migrated)
  end)
end)

describe("a migrator killed with SIGKILL in a step", function()
  local ctx, proc, killed, sleeper

  local function sleeping_backend()
    return mig.admin("SELECT pid FROM pg_stat_activity WHERE datname = "
      .. ctx:literal(ctx.dbname) .. " AND usename = 'rt_owner' "
      .. "AND query LIKE '%pg_sleep(5)%' AND pid <> pg_backend_pid() LIMIT 1")
  end

  setup(function()
    ctx = mig.new("killed")
    ctx:tenant_steps({
      ["0001_items.lua"] = [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE items (id bigint PRIMARY KEY)]]
  end,
  down = function(m)
    m:exec [[DROP TABLE items]]
  end,
}
]=],
      -- Slow for tenants until the marker table public.fast exists.
      ["0002_slow.lua"] = [=[
return {
  up = function(m)
    m:exec [[CREATE TABLE slow_tbl (id int)]]
    local fast = m:query("SELECT to_regclass('public.fast') IS NOT NULL AS f")[1].f
    if m.tenant and not fast then
      m:exec [[SELECT pg_sleep(5)]]
    end
  end,
  down = function(m)
    m:exec [[DROP TABLE slow_tbl]]
  end,
}
]=],
    })
    local res = ctx:migrate("up --core")
    assert.equal(0, res.code, mig.explain(res))
    ctx:add_tenants({ "k01" })
    proc = ctx:spawn("--json")
    for _ = 1, 200 do
      sleeper = sleeping_backend()
      if sleeper ~= "" then
        break
      end
      h.sleep(0.05)
    end
    assert.are_not.equal("", sleeper, "the step never reached pg_sleep")
    h.run("kill -KILL " .. proc.pid)
    killed = ctx:wait(proc, 10)
    -- The orphaned backend finishes its sleep, finds the client gone and
    -- rolls back; do not wait longer than the sleep itself.
    for _ = 1, 120 do
      if sleeping_backend() == "" then
        break
      end
      h.sleep(0.05)
    end
    mig.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
      .. ctx:literal(ctx.dbname) .. " AND usename = 'rt_owner'")
  end)

  teardown(function()
    ctx:destroy()
  end)

  it("died of the signal", function()
    assert.equal(137, killed.code, mig.explain(killed))
  end)

  it("left the interrupted step out of the ledger", function()
    assert.same({ 1 }, ctx:versions("t_k01"))
  end)

  it("rolled back the interrupted step's changes", function()
    assert.is_true(ctx:exists("t_k01.items"))
    assert.is_false(ctx:exists("t_k01.slow_tbl"))
  end)

  it("completes to head on a rerun", function()
    ctx:sql("CREATE TABLE public.fast ()")
    local res = ctx:migrate("--json")
    assert.equal(0, res.code, mig.explain(res))
    assert.same({ 1, 2 }, ctx:versions("t_k01"))
    assert.is_true(ctx:exists("t_k01.slow_tbl"))
    local t = ctx:tenant("k01")
    assert.equal(2, t.schema_version)
    assert.equal("ok", t.migration_status)
  end)
end)

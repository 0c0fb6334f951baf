-- Keys of tenant tables are per tenant (tenant migration 0005): with a primary
-- key on id alone, a tenant inserting rows with ids of its choosing (its own
-- tenant_id, so the policy's WITH CHECK passes) took the ids another tenant's
-- inserts would get next (23505), and a duplicate key told it which ids other
-- tenants' rows have. (Found in review.)
local iso = require "helpers.isolation"
local cjson = require "cjson"

describe("ids in tenant tables", function()
  local ctx, srv, sb_marker

  setup(function()
    ctx = iso.tenants("iso_identity")
    srv = iso.start(ctx) -- guard on
    -- tenant sb's own marker id (what sa should never learn)
    sb_marker = iso.attack(srv, "sb", { "SELECT id FROM boards WHERE code = 'marker'" })[1]
      .rows[1].id
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    ctx:destroy()
  end)

  it("does not tell a tenant which ids another tenant's rows have", function()
    local r = iso.attack(srv, "sa", {
      ("INSERT INTO boards (id, code, name) VALUES (%d, 'probe', 'p') RETURNING id")
        :format(sb_marker),
    })[1]
    assert.is_not.equal("23505", r.sqlstate,
      "a duplicate key reveals tenant sb's row id " .. sb_marker)
  end)

  it("lets no tenant make another tenant's inserts fail", function()
    local mine = iso.attack(srv, "sa", {
      "INSERT INTO boards (code, name) VALUES ('mine', 'mine') RETURNING id",
    })[1]
    local next_id = mine.rows[1].id
    local squat = iso.attack(srv, "sa", {
      ("INSERT INTO boards (id, code, name) SELECT %d + g, 'squat' || g, 'x' "
        .. "FROM generate_series(1, 5) g RETURNING id"):format(next_id),
    })[1]
    assert.is_table(squat.rows, cjson.encode(squat))
    local r = iso.attack(srv, "sb", {
      "INSERT INTO boards (code, name) VALUES ('victim', 'victim') RETURNING name",
    })[1]
    assert.is_nil(r.error, "tenant sb's insert failed: " .. cjson.encode(r))
    assert.equal("victim", r.rows[1].name)
  end)
end)

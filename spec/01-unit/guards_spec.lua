-- scripts/lib/guards.lua in plain Lua: the rank and grant rules of the
-- tenant-scope API, against a scripted rt.db.
local unit = require "helpers.unit"

local http_error = unit.http_error

local db = unit.db()
local guards = unit.install({ rt = unit.rt(), ["rt.db"] = db, ["rt.json"] = unit.json },
  { "lib.crud", "lib.guards" })

-- A request of tenant user 7 whose rank is read from the database once.
local function req(rank)
  db.reply({ rank })
  return { user = { scope = "tenant", id = "7" } }
end

local function forbidden(fn, ...)
  local e = http_error(fn, ...)
  assert.same({ 403, "forbidden" }, { e.status, e.code })
  return e.message
end

before_each(function()
  db.reset()
end)

after_each(function()
  assert.same({}, db.replies, "every statement a spec expects is run")
end)

describe("guards.caller", function()
  it("reads a tenant user's rank once per request", function()
    local r = req({ super = false, priority = 50 })
    assert.same({ super = false, priority = 50 }, guards.caller(r))
    assert.same({ super = false, priority = 50 }, guards.caller(r))
    assert.equal(1, #db.calls)
    assert.same({ "7", n = 1 }, db.calls[1].args)
  end)

  it("ranks a user without roles (no row) lowest", function()
    assert.same({ super = false, priority = 0 }, guards.caller(req(nil)))
  end)

  it("takes a platform token as a superuser without asking", function()
    local me = guards.caller({ user = { scope = "core", id = "1" } })
    assert.is_true(me.super)
    assert.equal(math.maxinteger, me.priority)
    assert.equal(0, #db.calls)
  end)
end)

describe("guards.role", function()
  it("lets superusers change any role", function()
    guards.role(req({ super = true, priority = 0 }), { code = "super_admin", priority = 99 })
  end)

  it("keeps super_admin for superusers", function()
    assert.equal("only superusers may grant, revoke or change super_admin",
      forbidden(guards.role, req({ super = false, priority = 1000 }),
        { code = "super_admin", priority = 1 }))
  end)

  it("allows only roles below the caller's highest priority", function()
    local r = req({ super = false, priority = 50 })
    guards.role(r, { code = "clerk", priority = 49 })
    assert.equal("role peer has priority 50, at or above your highest role (50)",
      forbidden(guards.role, r, { code = "peer", priority = 50 }))
    forbidden(guards.role, r, { code = "boss", priority = 51 })
  end)
end)

describe("guards.user", function()
  it("allows changing only users who rank below the caller", function()
    local r = req({ super = false, priority = 50 })
    db.reply({ { super = false, priority = 10 } })
    guards.user(r, 8)
    db.reply({ { super = false, priority = 50 } })
    forbidden(guards.user, r, 9)
    db.reply({ { super = true, priority = 0 } })
    forbidden(guards.user, r, 10)
    assert.same({ 9, n = 1 }, db.calls[3].args)
  end)

  it("asks nothing more for a superuser", function()
    guards.user(req({ super = true, priority = 0 }), 8)
    assert.equal(1, #db.calls)
  end)
end)

describe("guards.holds and guards.grant", function()
  it("reads the caller's permissions once and honours {resource}_manage", function()
    local r = req({ super = false, priority = 10 })
    db.reply({ { codes = "user_read,role_manage" } })
    assert.is_true(guards.holds(r, "user_read"))
    assert.is_false(guards.holds(r, "user_update"))
    assert.is_true(guards.holds(r, "role_delete"))
    assert.is_true(guards.holds(r, "role_manage"))
    assert.is_false(guards.holds(r, "menu_read"))
    assert.equal(2, #db.calls)
  end)

  it("holds nothing when the caller has no roles", function()
    local r = req({ super = false, priority = 0 })
    db.reply({ { codes = "" } })
    assert.is_false(guards.holds(r, "user_read"))
  end)

  it("refuses a grant of anything the caller does not hold", function()
    local r = req({ super = false, priority = 10 })
    db.reply({ { codes = "user_read,menu_read" } })
    guards.grant(r, { "user_read", "menu_read" }, "role clerk")
    assert.equal("role boss would grant user_delete, which you do not hold",
      forbidden(guards.grant, r, { "user_read", "user_delete" }, "role boss"))
  end)

  it("lets superusers grant anything", function()
    guards.grant(req({ super = true, priority = 0 }), { "anything_at_all" }, "x")
    assert.equal(1, #db.calls)
  end)
end)

describe("guards.superuser_flag", function()
  it("lets only superusers set is_superuser", function()
    -- a body without the flag needs no rank
    guards.superuser_flag({ user = { scope = "tenant", id = "7" } }, { name = "x" })
    assert.equal(0, #db.calls)
    forbidden(guards.superuser_flag, req({ super = false, priority = 5 }),
      { is_superuser = false })
    guards.superuser_flag(req({ super = true, priority = 0 }), { is_superuser = true })
  end)
end)

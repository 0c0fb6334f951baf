-- Users (seed 002) in every isolation mode: CRUD with soft delete, the
-- caller's own profile, sessions that end when a user is deleted or
-- disabled, every 4xx, and no password hash in any response (helpers.api
-- checks every body).
local api = require "helpers.api"

local P = api.PASSWORD

api.suite(_ENV, "users API", "users", { users_other = "shared" }, function(t)
  local env, code, mode, call = t.env, t.code, t.mode, t.call
  local admin, admin_id

  setup(function()
    admin = env:admin(code)
    admin_id = env:call("GET", "/api/v1/users/me", { token = admin }).json.id
  end)

  it("creates, reads, lists, updates and soft-deletes a user", function()
    local r = call("POST", "/api/v1/users", { username = "john",
      email = "John@Example.com", full_name = "John Doe", password = P,
      tenant_id = env.tenants[code].id })
    assert.equal(201, r.status, r.body)
    local john = r.json
    assert.equal("john", john.username)
    assert.equal("john@example.com", john.email)
    assert.equal("active", john.status)
    assert.equal(admin_id, john.created_by)

    r = call("GET", "/api/v1/users/" .. john.id)
    assert.equal(200, r.status)
    assert.equal("John Doe", r.json.full_name)

    r = call("PATCH", "/api/v1/users/" .. john.id, { full_name = "Jane Doe",
      phone = "+1234567890" })
    assert.equal(200, r.status, r.body)
    assert.equal("Jane Doe", r.json.full_name)
    assert.equal("+1234567890", r.json.phone)
    assert.equal(admin_id, r.json.updated_by)

    local john_token = env:login(code, "john")
    assert.equal(200, env:call("GET", "/api/v1/users/me", { token = john_token }).status)

    local found = false
    for _, u in ipairs(call("GET", "/api/v1/users?limit=1000").json) do
      found = found or u.id == john.id
    end
    assert.is_true(found)

    assert.equal(204, call("DELETE", "/api/v1/users/" .. john.id).status)
    assert.equal(404, call("GET", "/api/v1/users/" .. john.id).status)
    assert.equal(404, call("DELETE", "/api/v1/users/" .. john.id).status)
    for _, u in ipairs(call("GET", "/api/v1/users?limit=1000").json) do
      assert.not_equal(john.id, u.id)
    end
    assert.equal("deleted|true", env:sql(code, "SELECT status || '|' || "
      .. "(deleted_at IS NOT NULL) FROM users WHERE id = " .. john.id))
    -- the deleted user's token stops working at once
    assert.equal(401, env:call("GET", "/api/v1/users/me", { token = john_token }).status)
    assert.equal(401, env:call("GET", "/api/v1/auth/me", { token = john_token }).status)
  end)

  it("puts new users in all_members", function()
    local r = call("POST", "/api/v1/users", { email = "grouped@x.test", password = P })
    assert.equal(201, r.status, r.body)
    assert.equal("grouped@x.test", r.json.username)
    local groups = call("GET", "/api/v1/users/" .. r.json.id .. "/groups").json
    assert.equal(1, #groups)
    assert.equal("all_members", groups[1].code)
  end)

  it("answers 409 for a taken username or email", function()
    assert.equal(201, call("POST", "/api/v1/users", { username = "dup",
      email = "dup@x.test", password = P }).status)
    local r = call("POST", "/api/v1/users", { username = "dup", email = "other@x.test",
      password = P })
    assert.equal(409, r.status)
    assert.equal("conflict", r.json.error)
    assert.equal("is already taken", r.json.fields.username)
    r = call("POST", "/api/v1/users", { username = "dup2", email = "DUP@x.test",
      password = P })
    assert.equal(409, r.status)
    assert.equal("is already taken", r.json.fields.email)
  end)

  it("answers 422 naming the field for bad bodies", function()
    local cases = {
      { { username = "x", password = P }, "email" },
      { { email = "not-an-email", password = P }, "email" },
      { { email = "weak@x.test", password = "short" }, "password" },
      { { email = "nopw@x.test" }, "password" },
      { { email = "extra@x.test", password = P, role = "admin" }, "role" },
      { { email = "st@x.test", password = P, status = "deleted" }, "status" },
      { { email = "tid@x.test", password = P, tenant_id = 999999 }, "tenant_id" },
      { { email = "t@x.test", password = P, username = "" }, "username" },
    }
    for _, c in ipairs(cases) do
      local r = call("POST", "/api/v1/users", c[1])
      assert.equal(422, r.status, r.body)
      assert.equal("validation_failed", r.json.error)
      assert.is_string(r.json.fields[c[2]], r.body)
    end
    local r = call("PATCH", "/api/v1/users/" .. admin_id, { email = 5 })
    assert.equal(422, r.status)
    assert.equal(400, call("POST", "/api/v1/users", "{not json").status)
  end)

  it("pages with skip and limit and answers 422 for bad values", function()
    local all = call("GET", "/api/v1/users?limit=1000").json
    assert.is_true(#all >= 2)
    local page = call("GET", "/api/v1/users?skip=1&limit=1").json
    assert.equal(1, #page)
    assert.equal(all[2].id, page[1].id)
    assert.same({}, call("GET", "/api/v1/users?skip=100000").json)
    for _, q in ipairs({ "skip=-1", "limit=0", "limit=1001", "limit=abc", "skip=1.5",
      "limit=" }) do
      local r = call("GET", "/api/v1/users?" .. q)
      assert.equal(422, r.status, q)
      assert.is_table(r.json.fields, q)
    end
  end)

  it("answers 401 without a token and 403 without the permission", function()
    assert.equal(401, env:call("GET", "/api/v1/users", { tenant = code }).status)
    assert.equal(401, env:call("GET", "/api/v1/users/me", { tenant = code }).status)
    local nobody = env:user(code)
    local r = env:call("GET", "/api/v1/users", { token = nobody })
    assert.equal(403, r.status)
    assert.matches("user_read", r.json.message)
    -- but everyone may read their own profile
    assert.equal(200, env:call("GET", "/api/v1/users/me", { token = nobody }).status)
    local viewer = env:user(code, { "viewer" })
    assert.equal(200, env:call("GET", "/api/v1/users", { token = viewer }).status)
    assert.equal(403, env:call("POST", "/api/v1/users", { token = viewer,
      body = { email = "v@x.test", password = P } }).status)
    assert.equal(403, env:call("DELETE", "/api/v1/users/" .. admin_id,
      { token = viewer }).status)
  end)

  it("answers 404 for missing, malformed and other tenants' ids", function()
    for _, id in ipairs({ "999999", "0", "abc", "1e3", "-1", "12345678901234567890" }) do
      assert.equal(404, call("GET", "/api/v1/users/" .. id).status, id)
      assert.equal(404, call("PATCH", "/api/v1/users/" .. id, { full_name = "x" }).status)
      assert.equal(404, call("GET", "/api/v1/users/" .. id .. "/roles").status)
    end
    local other = env:admin("users_other")
    local r = call("POST", "/api/v1/users", { email = "mine@x.test", password = P })
    local theirs = env:call("GET", "/api/v1/users/" .. r.json.id, { token = other })
    assert.is_true(theirs.status == 404 or theirs.json.email ~= "mine@x.test")
    if mode == "shared" then
      assert.equal(404, theirs.status) -- one table: only RLS keeps it apart
      assert.equal(404, env:call("DELETE", "/api/v1/users/" .. r.json.id,
        { token = other }).status)
    end
    -- a token of one tenant with another tenant named: 403
    assert.equal(403, env:call("GET", "/api/v1/users", { token = other,
      tenant = code }).status)
  end)

  it("lets users read and change their own profile", function()
    local token, id = env:user(code)
    local r = env:call("GET", "/api/v1/users/me", { token = token })
    assert.equal(id, r.json.id)
    r = env:call("PATCH", "/api/v1/users/me", { token = token,
      body = { full_name = "Me Myself", phone = "+49 30 1234" } })
    assert.equal(200, r.status, r.body)
    assert.equal("Me Myself", r.json.full_name)
    assert.equal(id, r.json.updated_by)
    r = env:call("PUT", "/api/v1/users/me", { token = token,
      body = { phone = api.null } })
    assert.equal(200, r.status, r.body)
    assert.is_nil(r.json.phone)
    -- email taken by someone else
    local admin_email = env:call("GET", "/api/v1/users/me", { token = admin }).json.email
    r = env:call("PATCH", "/api/v1/users/me", { token = token,
      body = { email = admin_email } })
    assert.equal(409, r.status)
    -- no way to change anything else
    r = env:call("PATCH", "/api/v1/users/me", { token = token,
      body = { is_superuser = true } })
    assert.equal(422, r.status)
    r = env:call("PATCH", "/api/v1/users/me", { token = token,
      body = { status = "active" } })
    assert.equal(422, r.status)
  end)

  it("changes the own password only with the current one, ending sessions", function()
    local token, id = env:user(code)
    local name = env:call("GET", "/api/v1/users/me", { token = token }).json.username
    local new = "Another-Long-Secret-7"
    local r = env:call("PATCH", "/api/v1/users/me", { token = token,
      body = { password = new } })
    assert.equal(422, r.status)
    assert.is_string(r.json.fields.current_password)
    r = env:call("PATCH", "/api/v1/users/me", { token = token,
      body = { password = new, current_password = "wrong-password-1" } })
    assert.equal(422, r.status)
    r = env:call("PATCH", "/api/v1/users/me", { token = token,
      body = { password = "aaaaaaaaaaaa", current_password = P } })
    assert.equal(422, r.status)
    assert.is_string(r.json.fields.password)
    r = env:call("PATCH", "/api/v1/users/me", { token = token,
      body = { password = new, current_password = P } })
    assert.equal(200, r.status, r.body)
    assert.equal(id, r.json.id)
    assert.equal(401, env:call("GET", "/api/v1/users/me", { token = token }).status)
    assert.equal(401, env:call("POST", "/api/v1/auth/login", { tenant = code,
      body = { username = name, password = P } }).status)
    env:login(code, name, new)
  end)

  it("ends the sessions of a disabled user", function()
    local token, id = env:user(code)
    local name = env:call("GET", "/api/v1/users/me", { token = token }).json.username
    local r = call("PATCH", "/api/v1/users/" .. id, { status = "suspended" })
    assert.equal(200, r.status, r.body)
    assert.equal("suspended", r.json.status)
    assert.equal(401, env:call("GET", "/api/v1/users/me", { token = token }).status)
    assert.equal(401, env:call("POST", "/api/v1/auth/login", { tenant = code,
      body = { username = name, password = P } }).status)
    assert.equal(200, call("PATCH", "/api/v1/users/" .. id, { status = "active" }).status)
    env:login(code, name)
  end)

  it("lets an admin reset a password, which ends the user's sessions", function()
    local token, id = env:user(code)
    local name = env:call("GET", "/api/v1/users/me", { token = token }).json.username
    local r = call("PATCH", "/api/v1/users/" .. id, { password = "x" })
    assert.equal(422, r.status)
    r = call("PATCH", "/api/v1/users/" .. id, { password = "Reset-By-Admin-42" })
    assert.equal(200, r.status, r.body)
    assert.equal(401, env:call("GET", "/api/v1/users/me", { token = token }).status)
    env:login(code, name, "Reset-By-Admin-42")
  end)

  it("keeps admins from changing users who rank at or above them", function()
    local boss, boss_id = env:user(code, { "admin" })
    local _, peer_id = env:user(code, { "admin" })
    local _, low_id = env:user(code, { "editor" })
    local function as_boss(method, path, body)
      return env:call(method, path, { token = boss, body = body })
    end
    assert.equal(403, as_boss("PATCH", "/api/v1/users/" .. admin_id,
      { full_name = "pwned" }).status)
    assert.equal(403, as_boss("DELETE", "/api/v1/users/" .. peer_id).status)
    assert.equal(200, as_boss("PATCH", "/api/v1/users/" .. low_id,
      { full_name = "ok" }).status)
    assert.equal(403, as_boss("PATCH", "/api/v1/users/" .. low_id,
      { is_superuser = true }).status)
    assert.equal(403, as_boss("POST", "/api/v1/users", { email = "su@x.test",
      password = P, is_superuser = true }).status)
    assert.equal(409, call("DELETE", "/api/v1/users/" .. admin_id).status)
    assert.equal(204, as_boss("DELETE", "/api/v1/users/" .. low_id).status)
    assert.not_nil(boss_id)
  end)
end)

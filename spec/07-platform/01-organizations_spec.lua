-- Organizations (seeds 001 and 003): the quick start end to end, owners log
-- in to their organization with their platform credentials, and
-- organizations are visible to their members only.
local h = require "helpers"
local platform = require "helpers.platform"

describe("organizations", function()
  local env, alice, bob

  setup(function()
    env = platform.new("platform_orgs")
    alice = env:core_user("alice@example.com", "alice-password-1")
    bob = env:core_user("bob@example.com", "bob-password-12")
  end)

  teardown(function()
    if env then
      env:destroy()
    end
  end)

  local function tenant_login(code, email, password)
    return env:tenant_login(code, email, password)
  end

  it("runs the seed 001 quick start: register, login, create, log in to it, me", function()
    local r = env:call("POST", "/api/v1/organizations", alice, { name = "Acme Corp" })
    assert.equal(201, r.status, r.body)
    assert.equal("acme_corp", r.json.code)
    assert.equal("Acme Corp", r.json.name)
    assert.equal("schema", r.json.isolation)
    assert.equal("active", r.json.status)
    assert.equal("owner", r.json.role)
    assert.is_number(r.json.id)
    assert.is_string(r.json.created_at)
    assert.equal("/api/v1/organizations/" .. r.json.id, r.headers.location)

    local token = tenant_login("acme_corp", "alice@example.com", "alice-password-1")
    local me = env:call("GET", "/api/v1/auth/me", token, nil, { ["X-Tenant-Id"] = "acme_corp" })
    assert.equal(200, me.status, me.body)
    assert.equal("tenant", me.json.scope)
    assert.equal("acme_corp", me.json.tenant)
    assert.equal("alice@example.com", me.json.email)
    assert.equal("alice", me.json.full_name)
    assert.is_nil(me.json.password_hash)
  end)

  it("makes the creator the tenant's super_admin and records the membership", function()
    local id = env.ctx:sql("SELECT id FROM core.tenants WHERE code = 'acme_corp'")
    assert.equal("owner", env.ctx:sql("SELECT m.role FROM core.tenant_members m JOIN "
      .. "core.users u ON u.id = m.user_id WHERE m.tenant_id = " .. id
      .. " AND u.email = 'alice@example.com'"))
    assert.equal("super_admin", env.ctx:sql("SET app.tenant_id = '" .. id
      .. "'; SET search_path = t_acme_corp; SELECT r.code FROM users u JOIN user_roles ur "
      .. "ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id"))
  end)

  it("refuses a wrong password at the new tenant like any other login", function()
    local r = env:call("POST", "/api/v1/auth/login", nil,
      { username = "alice@example.com", password = "not-her-password" },
      { ["X-Tenant-Id"] = "acme_corp" })
    assert.equal(401, r.status)
  end)

  it("lists the caller's organizations only", function()
    local r = env:call("GET", "/api/v1/organizations/me", alice)
    assert.equal(200, r.status, r.body)
    assert.equal(1, #r.json)
    assert.equal("acme_corp", r.json[1].code)
    r = env:call("GET", "/api/v1/organizations/me", bob)
    assert.equal(200, r.status)
    assert.equal("[]", r.body)
  end)

  it("shows an organization to members and superusers, 404 to anyone else", function()
    local id = env.ctx:sql("SELECT id FROM core.tenants WHERE code = 'acme_corp'")
    local r = env:call("GET", "/api/v1/organizations/" .. id, alice)
    assert.equal(200, r.status, r.body)
    assert.equal("acme_corp", r.json.code)
    r = env:call("GET", "/api/v1/organizations/" .. id, env:admin_token())
    assert.equal(200, r.status, r.body)
    local other = env:call("GET", "/api/v1/organizations/" .. id, bob)
    local missing = env:call("GET", "/api/v1/organizations/999999", bob)
    assert.equal(404, other.status)
    assert.equal(404, missing.status)
    -- not probeable: the same answer for someone else's and for no organization
    assert.equal(other.json.error, missing.json.error)
    assert.equal(other.json.message, missing.json.message)
    assert.equal(404, env:call("GET", "/api/v1/organizations/abc", bob).status)
  end)

  it("provisions a database-isolated organization with its own database", function()
    env:owns_database("bob_db")
    local r = env:call("POST", "/api/v1/organizations", bob,
      { name = "Bob's DB", code = "bob_db", isolation = "database" })
    assert.equal(201, r.status, r.body)
    assert.equal("database", r.json.isolation)
    assert.equal("1", h.psql("SELECT count(*) FROM pg_database WHERE datname = 't_bob_db'",
      h.admin_url))
    local token = tenant_login("bob_db", "bob@example.com", "bob-password-12")
    local me = env:call("GET", "/api/v1/auth/me", token, nil, { ["X-Tenant-Id"] = "bob_db" })
    assert.equal(200, me.status, me.body)
    assert.equal("bob@example.com", me.json.email)
    -- Alice's tenant does not know Bob
    local other = env:call("POST", "/api/v1/auth/login", nil,
      { username = "bob@example.com", password = "bob-password-12" },
      { ["X-Tenant-Id"] = "acme_corp" })
    assert.equal(401, other.status)
  end)

  it("provisions a shared-mode organization", function()
    local r = env:call("POST", "/api/v1/organizations", bob,
      { name = "Bob Shared", isolation = "shared" })
    assert.equal(201, r.status, r.body)
    assert.equal("bob_shared", r.json.code)
    local token = tenant_login("bob_shared", "bob@example.com", "bob-password-12")
    assert.equal(200, env:call("GET", "/api/v1/auth/me", token, nil,
      { ["X-Tenant-Id"] = "bob_shared" }).status)
  end)

  it("answers 409 for a code that is taken, and keeps the first", function()
    local r = env:call("POST", "/api/v1/organizations", bob, { name = "Acme Corp" })
    assert.equal(409, r.status, r.body)
    assert.equal("conflict", r.json.error)
    assert.equal("is already taken", r.json.fields.code)
    assert.equal("active", env.ctx:sql("SELECT status FROM core.tenants WHERE code = "
      .. "'acme_corp'"))
    assert.equal("0", env.ctx:sql("SELECT count(*) FROM core.tenant_members m JOIN "
      .. "core.users u ON u.id = m.user_id WHERE u.email = 'bob@example.com' AND "
      .. "m.tenant_id = (SELECT id FROM core.tenants WHERE code = 'acme_corp')"))
  end)

  it("validates the body: 422 with field names", function()
    local r = env:call("POST", "/api/v1/organizations", bob, { name = "!!! 123" })
    assert.equal(422, r.status, r.body)
    assert.is_string(r.json.fields.code)
    r = env:call("POST", "/api/v1/organizations", bob, { name = "X", code = "Bad Code" })
    assert.equal(422, r.status)
    assert.is_string(r.json.fields.code)
    r = env:call("POST", "/api/v1/organizations", bob, { name = "X", isolation = "cloud" })
    assert.equal(422, r.status)
    assert.is_string(r.json.fields.isolation)
    r = env:call("POST", "/api/v1/organizations", bob, {})
    assert.equal(422, r.status)
    assert.equal("is required", r.json.fields.name)
  end)

  it("needs a platform token: none 401, a tenant token 403", function()
    assert.equal(401, env:call("POST", "/api/v1/organizations", nil, { name = "Nope" }).status)
    assert.equal(401, env:call("GET", "/api/v1/organizations/me").status)
    local token = tenant_login("acme_corp", "alice@example.com", "alice-password-1")
    local r = env:call("GET", "/api/v1/organizations/me", token)
    assert.equal(403, r.status)
    r = env:call("POST", "/api/v1/organizations", token, { name = "Nope" })
    assert.equal(403, r.status)
  end)
end)

-- GET /openapi.json and /docs: the document covers every route with its
-- body schema and security, and the docs page works without internet.
local platform = require "helpers.platform"

describe("openapi", function()
  local env

  setup(function()
    env = platform.new("platform_openapi")
  end)

  teardown(function()
    if env then
      env:destroy()
    end
  end)

  -- The routes the scripts declare, from the server's start-up line.
  local function route_count()
    return tonumber(env.srv:logs():match("(%d+) routes"))
  end

  it("is an OpenAPI 3.1 document with an operation for every route", function()
    local r = env:call("GET", "/openapi.json")
    assert.equal(200, r.status)
    assert.matches("^application/json", r.headers["content-type"])
    local doc = r.json
    assert.equal("3.1.0", doc.openapi)
    assert.is_string(doc.info.title)
    local n = 0
    for _, ops in pairs(doc.paths) do
      for _ in pairs(ops) do
        n = n + 1
      end
    end
    assert.equal(route_count(), n)
    for _, p in ipairs({ "/api/v1/organizations", "/api/v1/organizations/me",
      "/api/v1/organizations/{id}", "/api/v1/tenants", "/api/v1/tenants/{id}",
      "/api/v1/tenants/code/{code}", "/api/v1/tenants/provision-schema",
      "/api/v1/tenants/run-migrations", "/api/v1/tenants/{id}/migration-status",
      "/api/v1/tenants/migrations/{run_id}", "/api/v1/auth/login", "/openapi.json",
      "/docs" }) do
      assert.is_table(doc.paths[p], p)
    end
    assert.is_nil(r.body:find("/:", 1, true))
  end)

  it("describes path parameters, bodies, security and the tenant header", function()
    local doc = env:call("GET", "/openapi.json").json
    local get = doc.paths["/api/v1/tenants/{id}"].get
    assert.same({ name = "id", ["in"] = "path", required = true,
      schema = { type = "string" } }, get.parameters[1])
    assert.same({ { bearerAuth = {} } }, get.security)
    assert.equal("core", get["x-scope"])
    assert.equal("platform_admin", get["x-permission"])
    assert.same({ "tenants" }, get.tags)
    assert.equal("http", doc.components.securitySchemes.bearerAuth.type)
    assert.equal("bearer", doc.components.securitySchemes.bearerAuth.scheme)

    local post = doc.paths["/api/v1/organizations"].post
    local schema = post.requestBody.content["application/json"].schema
    assert.equal("object", schema.type)
    assert.same({ "name" }, schema.required)
    assert.same({ "shared", "schema", "database" }, schema.properties.isolation.enum)
    assert.is_string(schema.properties.code.pattern)

    local patch = doc.paths["/api/v1/tenants/{id}"].patch
    local domain = patch.requestBody.content["application/json"].schema.properties.domain
    assert.same({ "string", "null" }, domain.type)
    assert.is_nil(domain.nullable)

    local login = doc.paths["/api/v1/auth/login"].post
    assert.same({}, login.security)
    local me = doc.paths["/api/v1/auth/me"].get
    assert.equal("X-Tenant-Id", me.parameters[1].name)
    assert.equal("header", me.parameters[1]["in"])
  end)

  it("serves /docs as a self-contained HTML page", function()
    local r = env:call("GET", "/docs")
    assert.equal(200, r.status)
    assert.matches("^text/html", r.headers["content-type"])
    assert.matches("<!doctype html>", r.body, 1, true)
    assert.matches('fetch("/openapi.json")', r.body, 1, true)
    -- nothing from the internet
    assert.is_nil(r.body:find("https?://"))
    assert.is_nil(r.body:find("<script src", 1, true))
  end)
end)

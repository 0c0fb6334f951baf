-- GET /openapi.json: an OpenAPI 3.1 document generated from the route table
-- (rt.routes()): every route's method, path, scope, permission, summary,
-- description, tags and body schema (the same schema that validates the
-- request becomes its requestBody). Non-public routes carry the bearer
-- security scheme; tenant and any routes the X-Tenant-Id header.
--
-- GET /docs: a self-contained HTML page (no CDN, no internet access) that
-- fetches /openapi.json and renders the operations, with a small form to
-- try one; its HTML, CSS and JavaScript are in lib/docs_page.lua.
local json = require "rt.json"
local rt = require "rt"
local docs_page = require "lib.docs_page"


-- Our body schema subset as JSON Schema 2020-12 (what OpenAPI 3.1 uses):
-- nullable becomes a "null" type, format "code" gets its pattern.
local function schema_of(s)
  if type(s) ~= "table" then
    return s
  end
  local out = {}
  for k, v in pairs(s) do
    if k == "properties" then
      local props = {}
      for name, p in pairs(v) do
        props[name] = schema_of(p)
      end
      out.properties = props
    elseif k == "items" then
      out.items = schema_of(v)
    elseif k ~= "nullable" then
      out[k] = v
    end
  end
  if s.required then
    out.required = json.array(s.required)
  end
  if s.enum then
    out.enum = json.array(s.enum)
  end
  if s.nullable and s.type then
    out.type = json.array({ s.type, "null" })
  end
  if s.format == "code" then
    out.pattern = "^[a-z][a-z0-9_]{1,39}$"
  end
  return out
end

local function operation_id(method, pattern)
  local id = method:lower() .. pattern:gsub(":", "by_"):gsub("[^%w]+", "_")
  return (id:gsub("_+$", ""))
end

local ERROR_SCHEMA = {
  type = "object", required = json.array({ "error", "message" }),
  properties = {
    error = { type = "string", description = "machine-readable code" },
    message = { type = "string", description = "what to fix" },
    fields = { type = "object", additionalProperties = { type = "string" },
      description = "field name to what is wrong with it (422)" },
    request_id = { type = "string" },
  },
}

local function error_response(description)
  return { description = description, content = { ["application/json"] = {
    schema = { ["$ref"] = "#/components/schemas/Error" } } } }
end

local function operation(r)
  local params = {}
  local path = r.pattern:gsub(":([%w_]+)", function(name)
    params[#params + 1] = { name = name, ["in"] = "path", required = true,
      schema = { type = "string" } }
    return "{" .. name .. "}"
  end)
  if r.scope == "tenant" or r.scope == "any" then
    params[#params + 1] = { name = "X-Tenant-Id", ["in"] = "header",
      required = false, schema = { type = "string" },
      description = "tenant id or code" .. (r.scope == "tenant"
        and " (or the tenant of a tenant token)" or "; none for platform (core) scope") }
  end
  local op = {
    operationId = operation_id(r.method, r.pattern),
    summary = r.summary,
    description = r.description,
    tags = r.tags and json.array(r.tags) or nil,
    responses = {
      ["2XX"] = { description = "success" },
      ["4XX"] = error_response("client error (see error and message)"),
      ["5XX"] = error_response("server error (details are in the log under request_id)"),
    },
    ["x-scope"] = r.scope,
    ["x-permission"] = r.permission,
    ["x-offload"] = r.offload or nil,
    ["x-source"] = r.file,
  }
  if #params > 0 then
    op.parameters = params
  end
  if r.scope == "public" then
    op.security = json.array()
  else
    op.security = json.array({ { bearerAuth = json.array() } })
  end
  if r.body then
    op.requestBody = { required = true, content = {
      ["application/json"] = { schema = schema_of(r.body) } } }
  end
  return path, op
end

local function document()
  local paths, tags, seen = {}, {}, {}
  for _, r in ipairs(rt.routes()) do
    local path, op = operation(r)
    paths[path] = paths[path] or {}
    paths[path][r.method:lower()] = op
    for _, t in ipairs(r.tags or {}) do
      if not seen[t] then
        seen[t] = true
        tags[#tags + 1] = { name = t }
      end
    end
  end
  table.sort(tags, function(a, b) return a.name < b.name end)
  return {
    openapi = "3.1.0",
    info = {
      title = "runtime API",
      version = "1",
      description = "Generated from the route table of scripts/api. Platform routes "
        .. "(x-scope core) take a platform token, tenant routes a tenant token.",
    },
    tags = json.array(tags),
    paths = paths,
    components = {
      securitySchemes = {
        bearerAuth = { type = "http", scheme = "bearer", bearerFormat = "JWT",
          description = "an access token from POST /api/v1/auth/login, or a platform "
            .. "API key (rtk_...)" },
      },
      schemas = { Error = ERROR_SCHEMA },
    },
  }
end

return {
  ["/openapi.json"] = {
    GET = {
      scope = "public", unknown_tenant = true, tags = { "meta" },
      summary = "This API as an OpenAPI 3.1 document",
      handler = function()
        return { json = document() }
      end,
    },
  },
  ["/docs"] = {
    GET = {
      scope = "public", unknown_tenant = true, tags = { "meta" },
      summary = "API documentation (HTML; renders /openapi.json, works offline)",
      handler = function()
        return { body = docs_page, headers = { ["Content-Type"] = "text/html; charset=utf-8",
          ["Cache-Control"] = "no-cache" } }
      end,
    },
  },
}

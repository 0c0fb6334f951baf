-- Platform API keys for automation (platform superusers only). A key is
-- shown once, when it is made; the server keeps its SHA-256 digest.
local db = require "rt.db"
local auth = require "rt.auth"

local ADMIN = "platform_admin"

return {
  ["/api/v1/api-keys"] = {
    GET = {
      scope = "core", permission = ADMIN, tags = { "api-keys" },
      summary = "List API keys (never the keys themselves)",
      handler = function()
        local rows, err = db.query([[
          SELECT id, name, prefix, created_by, created_at, revoked_at
          FROM core.api_keys ORDER BY id]])
        if err then return nil, err end
        return { json = rows }
      end,
    },
    POST = {
      scope = "core", permission = ADMIN, tags = { "api-keys" },
      summary = "Create an API key; the response is the only time it is shown",
      body = {
        type = "object", required = { "name" }, additionalProperties = false,
        properties = { name = { type = "string", minLength = 1, maxLength = 100 } },
      },
      handler = function(req)
        local creator = tonumber(req.user.id) -- nil for a key made with a key
        local key, id = auth.create_api_key(req.json().name, creator)
        if not key then return nil, id end -- nil, message, err_t
        return { status = 201, json = { id = id, name = req.json().name, key = key },
          headers = { ["Cache-Control"] = "no-store" } }
      end,
    },
  },
  ["/api/v1/api-keys/:id"] = {
    DELETE = {
      scope = "core", permission = ADMIN, tags = { "api-keys" },
      summary = "Revoke an API key",
      handler = function(req)
        local id = math.tointeger(tonumber(req.params.id))
        local revoked, err
        if id then
          revoked, err = auth.revoke_api_key(id)
          if revoked == nil then return nil, err end
        end
        if not revoked then
          return { status = 404, json = { error = "not_found", message = "no such API key",
            request_id = req.id } }
        end
        return { status = 204 }
      end,
    },
  },
}

-- Organizations (seeds 001 and 003): a platform (core) user creates an
-- organization, which is a tenant provisioned with its migrations and seeds.
-- The creator becomes its owner in core.tenant_members and its first tenant
-- user (super_admin) with the same email and password hash, so they log in
-- to it with the credentials they already have: no default passwords.
--
-- Organizations are visible to their members only; anyone else gets 404, so
-- ids cannot be probed. Platform superusers (and API keys) see every one.
local db = require "rt.db"
local json = require "rt.json"
local tenant = require "rt.tenant"
local rt = require "rt"
local events = require "rt.events"
local log = require "rt.log"

local ORG_COLUMNS = [[
  t.id, t.code, t.name, t.isolation, t.status, t.domain, t.subdomain,
  t.created_at, t.updated_at]]

local code_from_name = require("lib.codes").from_name

local function not_found(req)
  return { status = 404, json = { error = "not_found",
    message = "no such organization", request_id = req.id } }
end

-- The caller as a core user id (nil for API keys, which are not users).
local function caller_id(req)
  local id = req.user.id
  if id:find("^apikey:") then
    return nil
  end
  return id
end

-- True when the caller administers the platform: a superuser or an API key.
-- Returns nil, err when the database fails.
local function is_platform_admin(req)
  local id = caller_id(req)
  if not id then
    return true
  end
  local row, err = db.query_one(
    "SELECT is_superuser FROM core.users WHERE id = $1 AND deleted_at IS NULL", id)
  if err then
    return nil, err
  end
  return row ~= nil and row.is_superuser == true
end

return {
  ["/api/v1/organizations"] = {
    POST = {
      scope = "core", offload = "admin", tags = { "organizations" },
      summary = "Create an organization (a tenant) owned by the caller",
      description = "Provisions a tenant (storage, migrations, seeds). The caller "
        .. "becomes its owner and its first user, with the same email and password. "
        .. "Without a code, one is derived from the name; a taken code is 409.",
      body = {
        type = "object", required = { "name" },
        additionalProperties = false,
        properties = {
          name = { type = "string", minLength = 1, maxLength = 200 },
          code = { type = "string", format = "code", minLength = 2, maxLength = 40 },
          isolation = { type = "string", enum = { "shared", "schema", "database" } },
        },
      },
      handler = function(req)
        local body = req.json()
        local uid = caller_id(req)
        if not uid then
          rt.error(403, "forbidden",
            "an organization is owned by a user: log in as a platform user, not an API key")
        end
        local code = body.code or code_from_name(body.name)
        if not code then
          rt.error(422, "validation_failed",
            "code is required: no valid code can be derived from the name",
            { code = "is required (the name has no letters to derive it from)" })
        end
        local user, err = db.query_one([[
          SELECT email, full_name, password_hash FROM core.users
          WHERE id = $1 AND deleted_at IS NULL AND status = 'active']], uid)
        if err then return nil, err end
        if not user then
          return { status = 401, json = { error = "unauthenticated",
            message = "invalid or expired token", request_id = req.id } }
        end
        local id, msg, kind = tenant.create {
          code = code, name = body.name, isolation = body.isolation,
          owner = { email = user.email, username = user.email,
            full_name = user.full_name, password_hash = user.password_hash },
        }
        if not id then
          if kind == "conflict" then
            rt.error(409, "conflict", "organization code '" .. code .. "' is already taken",
              { code = "is already taken" })
          end
          return nil, "could not create organization " .. code .. ": " .. msg
        end
        local _, merr = db.exec([[
          INSERT INTO core.tenant_members (tenant_id, user_id, role)
          VALUES ($1, $2, 'owner')]], id, uid)
        if merr then
          -- No organization without its owner: undo the provisioning.
          local ok, perr = tenant.purge(code)
          return nil, "could not record the owner of " .. code .. ": " .. merr
            .. (ok and "" or "; and purging it failed: " .. tostring(perr))
        end
        local org, oerr = db.query_one("SELECT " .. ORG_COLUMNS
          .. ", 'owner' AS role FROM core.tenants t WHERE t.id = $1", id)
        if oerr then return nil, oerr end
        -- Handlers in scripts/events run now, in this request's transaction. A
        -- failing listener is logged; the organization exists all the same.
        local eok, eerr = pcall(events.emit, "organization.created",
          { organization = org, owner_id = uid })
        if not eok then
          log.error("organization.created handler failed:", eerr)
        end
        return { status = 201, json = org,
          headers = { Location = "/api/v1/organizations/" .. id } }
      end,
    },
  },

  ["/api/v1/organizations/me"] = {
    GET = {
      scope = "core", tags = { "organizations" },
      summary = "The caller's organizations",
      handler = function(req)
        local uid = caller_id(req)
        if not uid then
          return { json = json.array() }
        end
        local rows, err = db.query("SELECT " .. ORG_COLUMNS .. [[, m.role
          FROM core.tenant_members m JOIN core.tenants t ON t.id = m.tenant_id
          WHERE m.user_id = $1 AND t.status <> 'deleted'
          ORDER BY t.created_at, t.id]], uid)
        if err then return nil, err end
        return { json = rows }
      end,
    },
  },

  ["/api/v1/organizations/:id"] = {
    GET = {
      scope = "core", tags = { "organizations" },
      summary = "One organization (members and platform superusers only)",
      handler = function(req)
        local id = req.params.id
        if not id:find("^%d+$") or #id > 18 then
          return not_found(req)
        end
        local uid = caller_id(req)
        local org, err = db.query_one("SELECT " .. ORG_COLUMNS .. [[, m.role
          FROM core.tenants t
          LEFT JOIN core.tenant_members m ON m.tenant_id = t.id AND m.user_id = $2
          WHERE t.id = $1 AND t.status <> 'deleted']], id, uid)
        if err then return nil, err end
        if not org then
          return not_found(req)
        end
        if org.role == rt.null then
          local admin, aerr = is_platform_admin(req)
          if aerr then return nil, aerr end
          if not admin then
            return not_found(req)
          end
        end
        return { json = org }
      end,
    },
  },
}

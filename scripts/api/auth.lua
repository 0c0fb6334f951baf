-- One login interface for platform (core) users and tenant users (seed 001):
-- with a tenant resolved (X-Tenant-Id, subdomain, ...) it is the tenant's
-- users table, without one the platform's core.users.
--
-- Wrong password, unknown user, disabled and locked accounts all get the
-- same 401 body after the same amount of work (an unknown user is checked
-- against a dummy hash). Failed logins count per account; past
-- auth.lockout_attempts the account is locked for auth.lockout_s.
--
-- A tenant that does not exist, or cannot be used (suspended, deleted),
-- looks like one that refuses (unknown_tenant routes: req.tenant_unknown):
-- login answers the same 401 after the same work, registration 403
-- registration_closed, refresh 401. Such a request never falls back to the
-- platform's accounts.
local db = require "rt.db"
local auth = require "rt.auth"
local rt = require "rt"

local CREDENTIALS = "invalid username or password"

local function unauthenticated(req, message)
  return { status = 401, json = { error = "unauthenticated", message = message,
    request_id = req.id } }
end

-- The table that holds the accounts of this request's scope.
local function accounts(req)
  return req.tenant and "users" or "core.users"
end

local function find_account(req, login)
  if req.tenant then
    return db.query_one([[
      SELECT id, password_hash, status, deleted_at, coalesce(locked_until > now(), false) AS locked
      FROM users
      WHERE (lower(email) = lower($1) OR username = $1) AND deleted_at IS NULL
      ORDER BY lower(email) = lower($1) DESC LIMIT 1]], login)
  end
  return db.query_one([[
    SELECT id, password_hash, status, deleted_at, coalesce(locked_until > now(), false) AS locked
    FROM core.users WHERE email = lower($1) AND deleted_at IS NULL]], login)
end

local function public_user(req, id)
  if req.tenant then
    return db.query_one([[
      SELECT id, username, email, full_name, phone, status, is_superuser,
             email_verified, last_login_at, created_at, updated_at
      FROM users WHERE id = $1 AND deleted_at IS NULL]], id)
  end
  return db.query_one([[
    SELECT id, email, full_name, is_superuser, status, last_login_at, created_at,
           updated_at
    FROM core.users WHERE id = $1 AND deleted_at IS NULL]], id)
end

local function check_password(body)
  local problem = auth.password_problem(body.password)
  if not problem and (body.password == body.email or body.password == body.username) then
    problem = "must not be the email or username"
  end
  if problem then
    rt.error(422, "validation_failed", "password " .. problem, { password = problem })
  end
end

local function conflict(err_t, what)
  if err_t and err_t.sqlstate == "23505" then
    return { status = 409, json = { error = "conflict", message = what .. " is already taken" } }
  end
end

return {
  ["/api/v1/auth/register"] = {
    POST = {
      scope = "public", offload = true, unknown_tenant = true, tags = { "auth" },
      summary = "Register a platform user, or a tenant user where the tenant allows it",
      body = {
        type = "object", required = { "email", "password" },
        additionalProperties = false,
        properties = {
          email = { type = "string", format = "email" },
          password = { type = "string", minLength = 1, maxLength = 256 },
          full_name = { type = "string", maxLength = 200 },
          username = { type = "string", minLength = 1, maxLength = 100 },
        },
      },
      handler = function(req)
        local body = req.json()
        if req.tenant_unknown then
          rt.error(403, "registration_closed",
            "this tenant does not allow self-registration")
        elseif req.tenant then
          if req.tenant.settings.allow_registration ~= true then
            rt.error(403, "registration_closed",
              "this tenant does not allow self-registration")
          end
        elseif not auth.config().core_registration then
          rt.error(403, "registration_closed", "platform registration is disabled")
        end
        check_password(body)
        local hash = auth.hash_password(body.password)
        local row, err, err_t
        if req.tenant then
          row, err, err_t = db.query_one([[
            INSERT INTO users (username, email, password_hash, full_name)
            VALUES ($1, lower($2), $3, $4) RETURNING id]],
            body.username or body.email:lower(), body.email, hash, body.full_name or "")
          if row then
            -- every tenant member is in all_members (seed groups)
            local _, gerr = db.exec([[
              INSERT INTO user_group_members (user_id, group_id)
              SELECT $1, id FROM user_groups WHERE code = 'all_members'
              ON CONFLICT DO NOTHING]], row.id)
            if gerr then return nil, gerr end
          end
        else
          row, err, err_t = db.query_one([[
            INSERT INTO core.users (email, password_hash, full_name)
            VALUES (lower($1), $2, $3) RETURNING id]], body.email, hash, body.full_name or "")
        end
        if not row then
          return conflict(err_t, "email or username") or nil, err
        end
        return { status = 201, json = public_user(req, row.id) }
      end,
    },
  },

  ["/api/v1/auth/login"] = {
    POST = {
      scope = "public", offload = true, unknown_tenant = true, tags = { "auth" },
      summary = "Log in (JSON, or OAuth2 password-flow form fields); tenant login when a tenant is named",
      body = {
        type = "object", required = { "password" },
        properties = {
          username = { type = "string", minLength = 1, maxLength = 254 },
          email = { type = "string", minLength = 1, maxLength = 254 },
          password = { type = "string", maxLength = 256 },
        },
      },
      handler = function(req)
        local body = req.fields()
        local login = body.username or body.email
        if not login then
          rt.error(422, "validation_failed", "username is required",
            { username = "is required" })
        end
        if req.tenant_unknown then
          auth.verify_password(body.password, nil) -- the work of a real check
          return unauthenticated(req, CREDENTIALS)
        end
        local acct, err = find_account(req, login)
        if err then return nil, err end
        -- Always one full password check, whatever the account's state.
        local ok = auth.verify_password(body.password, acct and acct.password_hash or nil)
        if not acct then
          return unauthenticated(req, CREDENTIALS)
        end
        local cfg = auth.config()
        if not ok then
          local _, uerr = db.exec(([[
            UPDATE %s SET
              failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0
                                   ELSE failed_logins + 1 END,
              locked_until = CASE WHEN failed_logins + 1 >= $2
                                  THEN now() + make_interval(secs => $3)
                                  ELSE locked_until END
            WHERE id = $1]]):format(accounts(req)), acct.id, cfg.lockout_attempts,
            cfg.lockout_s)
          if uerr then return nil, uerr end
          return unauthenticated(req, CREDENTIALS)
        end
        if acct.locked or acct.status ~= "active" then
          return unauthenticated(req, CREDENTIALS)
        end
        local _, uerr = db.exec(([[
          UPDATE %s SET failed_logins = 0, locked_until = NULL, last_login_at = now()
          WHERE id = $1]]):format(accounts(req)), acct.id)
        if uerr then return nil, uerr end
        local session, lerr = auth.login {
          sub = tostring(acct.id),
          scope = req.tenant and "tenant" or "core",
          tid = req.tenant and req.tenant.id or nil,
        }
        if not session then return nil, lerr end
        session.scope = req.tenant and "tenant" or "core"
        session.tenant = req.tenant and req.tenant.code or nil
        return { json = session, headers = { ["Cache-Control"] = "no-store" } }
      end,
    },
  },

  ["/api/v1/auth/refresh"] = {
    POST = {
      scope = "public", unknown_tenant = true, tags = { "auth" },
      summary = "Trade a refresh token for a new pair (the old one is spent)",
      body = {
        type = "object", required = { "refresh_token" },
        properties = { refresh_token = { type = "string", minLength = 1, maxLength = 200 } },
      },
      handler = function(req)
        -- rt.auth.refresh refuses the sessions of a tenant that is not
        -- active and of a platform user who is not; a tenant user's own
        -- status is in the tenant's storage, checked here when the request
        -- names the tenant (a disabled or deleted user's sessions were
        -- revoked when that happened through the API anyway).
        if req.tenant_unknown then
          return unauthenticated(req, "invalid or expired refresh token")
        end
        local session, rerr = auth.refresh(req.json().refresh_token)
        if rerr then return nil, rerr end
        if not session or (req.tenant and session.tid ~= req.tenant.id) then
          return unauthenticated(req, "invalid or expired refresh token")
        end
        if req.tenant and session.scope == "tenant" then
          local user, err = db.query_one([[
            SELECT id FROM users
            WHERE id = $1 AND deleted_at IS NULL AND status = 'active']], session.sub)
          if err then return nil, err end
          if not user then
            local revoked, verr = auth.revoke_user(session.sub) -- the pair just issued too
            if not revoked then return nil, verr end
            return unauthenticated(req, "invalid or expired refresh token")
          end
        end
        session.sub, session.tid = nil, nil
        return { json = session, headers = { ["Cache-Control"] = "no-store" } }
      end,
    },
  },

  ["/api/v1/auth/logout"] = {
    POST = {
      scope = "any", tags = { "auth" },
      summary = "Revoke the caller's token, and its session when refresh_token is given",
      handler = function(req)
        local refresh
        if req.body and req.body ~= "" then
          local body = rt.validate({ type = "object", properties = {
            refresh_token = { type = "string", maxLength = 200 } } }, req.json())
          refresh = body.refresh_token
        end
        local ok, err = auth.logout(refresh)
        if not ok then return nil, err end
        return { status = 204 }
      end,
    },
  },

  ["/api/v1/auth/logout-others"] = {
    POST = {
      scope = "any", tags = { "auth" },
      summary = "End every other session of the caller; this one goes on",
      description = "Revokes the refresh tokens of the caller's other logins and the "
        .. "access tokens issued from them. Answers how many sessions were ended.",
      handler = function(req)
        if req.user.id:find("^apikey:") then
          rt.error(400, "bad_request", "an API key has no sessions")
        end
        local n, err = auth.logout_others()
        if not n then return nil, err end
        return { json = { revoked_sessions = n } }
      end,
    },
  },

  ["/api/v1/auth/me"] = {
    GET = {
      scope = "any", tags = { "auth" },
      summary = "The authenticated principal",
      handler = function(req)
        if req.user.id:find("^apikey:") then
          return { json = { id = req.user.id, scope = "core", api_key = true } }
        end
        if req.user.scope == "core" and req.tenant then
          -- A platform user lives in core.users of the main database, which a
          -- tenant's own database does not have: same answer in every mode.
          rt.error(400, "tenant_not_applicable",
            "a platform token's /me names no tenant: send it without X-Tenant-Id")
        end
        local user, err = public_user(req.user.scope == "tenant" and req or {}, req.user.id)
        if err then return nil, err end
        if not user then
          return unauthenticated(req, "invalid or expired token")
        end
        user.scope = req.user.scope
        user.tenant = req.tenant and req.tenant.code or nil
        return { json = user }
      end,
    },
  },
}

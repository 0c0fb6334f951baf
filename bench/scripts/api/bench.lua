-- Benchmark endpoints, loaded by the runtime from bench/config.lua (scripts.dir).
-- Used only by the benchmarks (bench/*.sh); not part of the application.
local db = require "rt.db"

local ACCOUNT_SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"

return {
  -- A tenant-scoped read: the tenant comes from X-Tenant-Id, the transaction
  -- is scoped to it (used by bench/tenants.sh to serve many tenants).
  ["/bench/tenant"] = {
    GET = {
      scope = "public",
      handler = function(req)
        local row, err = db.query_one(
          "SELECT current_setting('app.tenant_id') AS tenant_id")
        if err then
          return nil, err
        end
        return { json = { code = req.tenant and req.tenant.code, db = row } }
      end,
    },
  },

  -- Pure runtime overhead: routing + Lua handler + JSON encoding, no database.
  ["/bench/hello"] = {
    GET = {
      scope = "public",
      handler = function()
        return { json = { message = "hello" } }
      end,
    },
  },

  -- Holds a pooled connection for ?ms= milliseconds (at most 10 s): as many
  -- concurrent calls as the pool is large open all its connections
  -- (bench/auth.sh, before it counts instructions per request).
  ["/bench/hold"] = {
    GET = {
      scope = "public",
      handler = function(req)
        local ms = math.min(tonumber(req.query.ms) or 0, 10000)
        local _, err = db.query_one("SELECT pg_sleep($1::float8 / 1000)", ms)
        if err then
          return nil, err
        end
        return { json = { held_ms = ms } }
      end,
    },
  },

  -- One indexed primary-key read through the runtime's connection pool.
  ["/bench/accounts/:aid"] = {
    GET = {
      scope = "public",
      handler = function(req)
        local row, err = db.query_one(ACCOUNT_SQL, req.params.aid)
        if err then
          return nil, err
        end

        if not row then
          return { status = 404, json = { error = "not_found", message = "no such account" } }
        end

        return { json = row }
      end,
    },
  },
}

-- GET /api/v1/info: what this runtime is connected to, read from PostgreSQL,
-- and the tenant the request named (X-Tenant-Id), if any: its transaction is
-- then scoped to that tenant's schema or database.
local db = require "rt.db"

return {
  ["/api/v1/info"] = {
    GET = {
      scope = "public",
      summary = "Server and database information",
      handler = function(req)
        local row, err = db.query_one([[
          SELECT current_setting('server_version') AS postgres_version,
                 current_database() AS database,
                 current_user AS role,
                 current_setting('search_path') AS search_path,
                 now() AS database_time
        ]])
        if err then
          return nil, err
        end
        return {
          json = {
            runtime = "runtime",
            request_id = req.id,
            tenant = req.tenant,
            database = row,
          },
        }
      end,
    },
  },
}

-- GET /api/v1/info: what this runtime is connected to, read from PostgreSQL.
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
                 now() AS database_time
        ]])
        if err then
          return nil, err
        end
        return {
          json = {
            runtime = "runtime",
            request_id = req.id,
            database = row,
          },
        }
      end,
    },
  },
}

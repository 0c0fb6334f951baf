-- GET /api/v1/info: which runtime this is and the PostgreSQL version it
-- runs on (read from PostgreSQL, so it also shows the database answers).
--
-- It is public and anonymous: it tells nothing about tenants (names,
-- settings, isolation, storage names) nor where the data lives (database,
-- role, search_path). A request naming a tenant, known or not, gets the same
-- answer (unknown_tenant), so tenant ids and codes cannot be probed here.
local db = require "rt.db"

return {
  ["/api/v1/info"] = {
    GET = {
      scope = "public", unknown_tenant = true,
      summary = "Runtime and PostgreSQL version",
      handler = function(req)
        local row, err = db.query_one(
          "SELECT current_setting('server_version') AS postgres_version")
        if err then
          return nil, err
        end
        return {
          json = {
            runtime = "runtime",
            request_id = req.id,
            database = { postgres_version = row.postgres_version },
          },
        }
      end,
    },
  },
}

-- The script host's admin view: which script set is serving, how many
-- reloads failed and the last error (file:line: message), tenants with
-- overrides, and this worker's tenant environments. Platform admins only.
local rt = require "rt"

return {
  ["/api/v1/admin/scripts"] = {
    GET = {
      scope = "core", permission = "platform_admin", tags = { "admin" },
      summary = "Script set in use, reload errors and tenant overrides",
      handler = function()
        return { json = rt.scripts_status(), headers = { ["Cache-Control"] = "no-store" } }
      end,
    },
  },
}

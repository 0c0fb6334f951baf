-- Event handlers: each file in scripts/events returns a table from event
-- name to a handler (or a list of them). rt.events.emit(name, payload) calls
-- them at once, in the emitter's request: the same tenant environment,
-- database transaction and limits. event = { name = ..., tenant = req.tenant }.
local log = require "rt.log"

return {
  ["organization.created"] = function(payload, event)
    log.info(event.name, "organization", payload.organization.code,
      "owner", payload.owner_id)
  end,
}

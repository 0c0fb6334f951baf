-- Boards of a tenant (seed 002): CRUD with soft delete (a deleted board
-- keeps its code), and the admin alias /api/v1/tenants/:tenant_id/boards.
local crud = require "lib.crud"
local boards = require("lib.resources").boards

return {
  ["/api/v1/boards"] = {
    GET = crud.list_route(boards, { permission = "board_read" }),
    POST = crud.create_route(boards, { permission = "board_create" }),
  },
  ["/api/v1/boards/:id"] = {
    GET = crud.get_route(boards, { permission = "board_read" }),
    PATCH = crud.update_route(boards, { permission = "board_update" }),
    DELETE = crud.delete_route(boards, { permission = "board_delete" }),
  },
  ["/api/v1/tenants/:tenant_id/boards"] = {
    GET = crud.list_route(boards, { permission = "board_read", scope = "any",
      summary = "List the tenant's boards (admin alias)" }),
  },
}

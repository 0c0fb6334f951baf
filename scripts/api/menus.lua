-- Menus of a tenant (seed 002): CRUD (deleting a menu deletes its submenus),
-- the menus as a tree, reordering without cycles, and the admin alias
-- /api/v1/tenants/:tenant_id/menus.
local json = require "rt.json"
local rt = require "rt"
local crud = require "lib.crud"
local menus = require("lib.resources").menus

local NULL = rt.null

-- Is candidate the menu itself or one of its descendants?
local function in_subtree(id, candidate)
  return crud.query_one("menu", [[
    WITH RECURSIVE sub AS (
      SELECT id FROM menus WHERE id = $1
      UNION SELECT m.id FROM menus m JOIN sub ON m.parent_id = sub.id)
    SELECT 1 AS found FROM sub WHERE id = $2]], id, candidate) ~= nil
end

local function tree()
  local all = crud.query("menu", ("SELECT %s FROM menus ORDER BY sort_order, id")
    :format(menus.columns))
  local by_id, roots = {}, json.array()
  for _, m in ipairs(all) do
    m.children = json.array()
    by_id[m.id] = m
  end
  for _, m in ipairs(all) do
    local parent = m.parent_id ~= NULL and by_id[m.parent_id]
    local siblings = parent and parent.children or roots
    siblings[#siblings + 1] = m
  end
  return { json = roots }
end

local ORDER_ITEMS = {
  type = "array", minItems = 1, maxItems = 1000,
  items = {
    type = "object", additionalProperties = false, required = { "id", "sort_order" },
    properties = {
      id = { type = "integer", minimum = 1 },
      parent_id = { type = "integer", minimum = 1, nullable = true },
      sort_order = { type = "integer", minimum = -1000000, maximum = 1000000 },
    },
  },
}

-- The new parent of every menu after applying items, or a 422 naming the
-- items that refer to missing menus, repeat, or would make a cycle.
local function reparent(items)
  local parent = {}
  for _, m in ipairs(crud.query("menu", "SELECT id, parent_id FROM menus FOR UPDATE")) do
    parent[m.id] = m.parent_id ~= NULL and m.parent_id or false
  end
  local fields, seen = {}, {}
  for i, it in ipairs(items) do
    local at = "items[" .. i .. "]"
    if parent[it.id] == nil then
      fields[at .. ".id"] = "does not exist"
    elseif seen[it.id] then
      fields[at .. ".id"] = "is listed twice"
    end
    seen[it.id] = true
    if it.parent_id ~= nil and it.parent_id ~= NULL and parent[it.parent_id] == nil then
      fields[at .. ".parent_id"] = "does not exist"
    end
  end
  crud.invalid_fields(fields)
  for _, it in ipairs(items) do
    if it.parent_id ~= nil then
      parent[it.id] = it.parent_id ~= NULL and it.parent_id or false
    end
  end
  for i, it in ipairs(items) do
    local visited, at = {}, parent[it.id]
    while at do
      if at == it.id or visited[at] then
        fields["items[" .. i .. "].parent_id"] = "would make a cycle"
        break
      end
      visited[at] = true
      at = parent[at]
    end
  end
  crud.invalid_fields(fields)
  return parent
end

local function reorder(req)
  local body = req.json()
  local items = type(body) == "table" and body.items or body
  items = rt.validate(ORDER_ITEMS, items)
  local parent = reparent(items)
  local rows = json.array()
  for i, it in ipairs(items) do
    rows[i] = { id = it.id, parent_id = parent[it.id] or NULL, sort_order = it.sort_order }
  end
  local n = crud.exec("menu", [[
    UPDATE menus m SET parent_id = x.parent_id, sort_order = x.sort_order,
      updated_at = now(), updated_by = $2
    FROM json_to_recordset($1::json) AS x(id bigint, parent_id bigint, sort_order integer)
    WHERE m.id = x.id]], json.encode(rows), crud.actor(req))
  return { json = { updated = n } }
end

return {
  ["/api/v1/menus"] = {
    GET = crud.list_route(menus, { permission = "menu_read",
      summary = "List menus, flat, by parent then sort_order" }),
    POST = crud.create_route(menus, { permission = "menu_create" }),
  },
  ["/api/v1/menus/:id"] = {
    GET = crud.get_route(menus, { permission = "menu_read" }),
    PATCH = crud.update_route(menus, {
      permission = "menu_update",
      before = function(_, current, values)
        local parent = values.parent_id
        if parent ~= nil and parent ~= NULL and in_subtree(current.id, parent) then
          crud.invalid("parent_id", "must not be the menu itself or one of its descendants")
        end
      end,
    }),
    DELETE = crud.delete_route(menus, { permission = "menu_delete",
      summary = "Delete a menu and its submenus" }),
  },
  ["/api/v1/menus/tree"] = {
    GET = crud.route {
      permission = "menu_read", tags = { "menus" },
      summary = "Menus as a tree: roots with nested children, by sort_order",
      handler = tree,
    },
  },
  ["/api/v1/menus/order"] = {
    PUT = crud.route {
      permission = "menu_update", tags = { "menus" },
      summary = "Reorder menus: a list of {id, parent_id, sort_order} (or {items: [...]}); "
        .. "parent_id left out keeps the parent; no cycles",
      handler = reorder,
    },
  },
  ["/api/v1/tenants/:tenant_id/menus"] = {
    GET = crud.list_route(menus, { permission = "menu_read", scope = "any",
      summary = "List the tenant's menus (admin alias)" }),
  },
}

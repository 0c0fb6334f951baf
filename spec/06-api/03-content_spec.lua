-- Menus and boards (seed 002) in every isolation mode: CRUD, the menu tree
-- and reordering without cycles, soft-deleted boards, the 002 admin aliases
-- under /api/v1/tenants/:tenant_id, and tenants kept apart.
local api = require "helpers.api"

api.suite(_ENV, "menus, boards and admin aliases API", "content", { content_other = "schema" }, function(t)
  local env, code, mode, call = t.env, t.code, t.mode, t.call
  local admin

  setup(function()
    admin = env:admin(code)
  end)

  local function menu(body)
    local r = call("POST", "/api/v1/menus", body)
    assert.equal(201, r.status, r.body)
    return r.json
  end

  it("creates menus with seed 002 names and lists them flat and as a tree", function()
    local top = menu({ menu_code = "reports", menu_name = "Reports",
      menu_url = "/reports", menu_icon = "chart", display_order = 50,
      tenant_id = env.tenants[code].id })
    assert.equal("reports", top.code)
    assert.equal("/reports", top.url)
    assert.equal("chart", top.icon)
    assert.equal(50, top.sort_order)
    local b = menu({ code = "reports_b", name = "B", parent_id = top.id, sort_order = 2 })
    local a = menu({ code = "reports_a", name = "A", parent_id = top.id, sort_order = 1,
      permission = "board_read" })
    assert.equal(409, call("POST", "/api/v1/menus", { code = "reports", name = "x" }).status)
    assert.equal(422, call("POST", "/api/v1/menus", { code = "orphan", name = "x",
      parent_id = 999999 }).status)
    assert.equal(422, call("POST", "/api/v1/menus", { code = "x", name = "x" }).status)

    local flat = call("GET", "/api/v1/menus?limit=1000").json
    local pos = {}
    for i, m in ipairs(flat) do
      pos[m.id] = i
    end
    assert.is_true(pos[a.id] == pos[b.id] - 1)
    -- roots first
    for i, m in ipairs(flat) do
      if m.parent_id == nil then
        assert.is_true(i <= 3 or flat[i - 1].parent_id == nil)
      end
    end

    local tree = call("GET", "/api/v1/menus/tree").json
    local node
    for _, m in ipairs(tree) do
      assert.is_nil(m.parent_id)
      if m.id == top.id then
        node = m
      end
    end
    assert.equal(2, #node.children)
    assert.equal("reports_a", node.children[1].code)
    assert.equal("reports_b", node.children[2].code)
    assert.same({}, node.children[1].children)
    assert.matches('"children":%[%]', call("GET", "/api/v1/menus/tree").body)
  end)

  it("updates and deletes menus, never making a cycle", function()
    local root = menu({ code = "cyc_root", name = "Root" })
    local child = menu({ code = "cyc_child", name = "Child", parent_id = root.id })
    local grand = menu({ code = "cyc_grand", name = "Grand", parent_id = child.id })
    local r = call("PATCH", "/api/v1/menus/" .. root.id, { parent_id = grand.id })
    assert.equal(422, r.status)
    assert.is_string(r.json.fields.parent_id)
    assert.equal(422, call("PATCH", "/api/v1/menus/" .. root.id,
      { parent_id = root.id }).status)
    r = call("PATCH", "/api/v1/menus/" .. grand.id, { parent_id = api.null,
      menu_name = "Grand, now a root", is_visible = false })
    assert.equal(200, r.status, r.body)
    assert.is_nil(r.json.parent_id)
    assert.is_false(r.json.is_visible)
    -- deleting a menu takes its submenus with it
    assert.equal(204, call("DELETE", "/api/v1/menus/" .. root.id).status)
    assert.equal(404, call("GET", "/api/v1/menus/" .. child.id).status)
    assert.equal(200, call("GET", "/api/v1/menus/" .. grand.id).status)
  end)

  it("reorders menus and refuses cycles", function()
    local p = menu({ code = "ord_p", name = "P" })
    local x = menu({ code = "ord_x", name = "X", parent_id = p.id, sort_order = 1 })
    local y = menu({ code = "ord_y", name = "Y", parent_id = p.id, sort_order = 2 })
    local r = call("PUT", "/api/v1/menus/order", {
      { id = x.id, parent_id = p.id, sort_order = 2 },
      { id = y.id, parent_id = p.id, sort_order = 1 },
    })
    assert.equal(200, r.status, r.body)
    assert.equal(2, r.json.updated)
    assert.equal(1, call("GET", "/api/v1/menus/" .. y.id).json.sort_order)
    -- {items: [...]} works too; y moves under x, x to the top level
    r = call("PUT", "/api/v1/menus/order", { items = {
      { id = y.id, parent_id = x.id, sort_order = 0 },
      { id = x.id, parent_id = api.null, sort_order = 99 },
    } })
    assert.equal(200, r.status, r.body)
    assert.equal(x.id, call("GET", "/api/v1/menus/" .. y.id).json.parent_id)
    assert.is_nil(call("GET", "/api/v1/menus/" .. x.id).json.parent_id)
    -- x under y while y is under x: a cycle, nothing changes
    r = call("PUT", "/api/v1/menus/order", { { id = x.id, parent_id = y.id,
      sort_order = 1 } })
    assert.equal(422, r.status)
    assert.matches("cycle", r.json.fields["items[1].parent_id"])
    r = call("PUT", "/api/v1/menus/order", {
      { id = p.id, parent_id = x.id, sort_order = 1 },
      { id = x.id, parent_id = p.id, sort_order = 1 },
    })
    assert.equal(422, r.status)
    assert.is_nil(call("GET", "/api/v1/menus/" .. x.id).json.parent_id)
    for _, bad in ipairs({
      {},
      { { id = 999999, sort_order = 1 } },
      { { id = x.id, parent_id = 999999, sort_order = 1 } },
      { { id = x.id, sort_order = 1 }, { id = x.id, sort_order = 2 } },
      { { id = x.id } },
      { { id = x.id, sort_order = "1" } },
      { items = "no" },
    }) do
      assert.equal(422, call("PUT", "/api/v1/menus/order", bad).status)
    end
    local viewer = env:user(code, { "viewer" })
    assert.equal(200, env:call("GET", "/api/v1/menus/tree", { token = viewer }).status)
    assert.equal(403, env:call("PUT", "/api/v1/menus/order", { token = viewer,
      body = { { id = x.id, sort_order = 1 } } }).status)
  end)

  it("creates, updates and soft-deletes boards", function()
    local r = call("POST", "/api/v1/boards", { board_code = "announcements",
      board_name = "Announcements", tenant_id = env.tenants[code].id,
      settings = { pinned = true, max_posts = 10 } })
    assert.equal(201, r.status, r.body)
    local board = r.json
    assert.equal("announcements", board.code)
    assert.same({ pinned = true, max_posts = 10 }, board.settings)
    assert.is_true(board.is_active)
    assert.equal(409, call("POST", "/api/v1/boards", { code = "announcements",
      name = "Again" }).status)
    for _, body in ipairs({
      { name = "no code" },
      { code = "x1", name = "x", settings = "text" },
      { code = "x1", name = "x", is_active = "yes" },
      { code = "x1", name = "x", board_code = "x2" },
    }) do
      assert.equal(422, call("POST", "/api/v1/boards", body).status)
    end
    r = call("PATCH", "/api/v1/boards/" .. board.id, { board_name = "News",
      is_active = false, settings = {} })
    assert.equal(200, r.status, r.body)
    assert.equal("News", r.json.name)
    assert.is_false(r.json.is_active)
    assert.matches('"settings":{}', r.body)
    assert.equal(204, call("DELETE", "/api/v1/boards/" .. board.id).status)
    assert.equal(404, call("GET", "/api/v1/boards/" .. board.id).status)
    assert.equal(404, call("PATCH", "/api/v1/boards/" .. board.id, { name = "x" }).status)
    assert.equal(404, call("DELETE", "/api/v1/boards/" .. board.id).status)
    for _, b in ipairs(call("GET", "/api/v1/boards").json) do
      assert.not_equal(board.id, b.id)
    end
    -- a soft-deleted board keeps its code
    assert.equal(409, call("POST", "/api/v1/boards", { code = "announcements",
      name = "New" }).status)
    local editor = env:user(code, { "editor" })
    assert.equal(201, env:call("POST", "/api/v1/boards", { token = editor,
      body = { code = "by_editor", name = "E" } }).status)
    local id = call("GET", "/api/v1/boards?limit=1000").json
    assert.equal(403, env:call("DELETE", "/api/v1/boards/" .. id[#id].id,
      { token = editor }).status)
  end)

  it("serves the 002 admin aliases to the tenant's admins and platform superusers",
    function()
      local tid = env.tenants[code].id
      local platform = env:platform_admin()
      for _, what in ipairs({ "users", "user-groups", "menus", "boards" }) do
        for _, key in ipairs({ code, tostring(tid) }) do
          local path = "/api/v1/tenants/" .. key .. "/" .. what
          local r = env:call("GET", path, { token = admin })
          assert.equal(200, r.status, path .. " " .. r.body)
          assert.same(call("GET", "/api/v1/" .. what .. "?limit=1000").json,
            env:call("GET", path .. "?limit=1000", { token = admin }).json)
          assert.equal(200, env:call("GET", path, { token = platform }).status)
        end
        local path = "/api/v1/tenants/" .. code .. "/" .. what
        assert.equal(401, env:call("GET", path).status)
        assert.equal(422, env:call("GET", path .. "?skip=x", { token = admin }).status)
        -- another tenant's token
        assert.equal(403, env:call("GET", path,
          { token = env:admin("content_other") }).status)
        -- a tenant user without the permission
        assert.equal(403, env:call("GET", path, { token = env:user(code) }).status)
      end
      assert.equal(404, env:call("GET", "/api/v1/tenants/nobody/users",
        { token = platform }).status)
    end)

  it("refuses platform users who are not superusers on the aliases", function()
    local r = env:call("POST", "/api/v1/auth/register", { body = {
      email = "plain" .. mode .. "@platform.test", password = api.PASSWORD } })
    assert.equal(201, r.status, r.body)
    local token = env:login(nil, "plain" .. mode .. "@platform.test")
    assert.equal(403, env:call("GET", "/api/v1/tenants/" .. code .. "/users",
      { token = token }).status)
    -- and platform tokens never reach the plain tenant routes
    assert.equal(403, env:call("GET", "/api/v1/users", { token = env:platform_admin(),
      tenant = code }).status)
  end)

  it("keeps another tenant's menus and boards out of reach", function()
    local board = call("POST", "/api/v1/boards", { code = "private_board",
      name = "Private" }).json
    local m = menu({ code = "private_menu", name = "Private" })
    local other = env:admin("content_other")
    for _, path in ipairs({ "/api/v1/boards/" .. board.id, "/api/v1/menus/" .. m.id }) do
      local r = env:call("GET", path, { token = other })
      assert.is_true(r.status == 404 or not r.body:find("private_", 1, true), path)
      r = env:call("GET", path:gsub("/%d+$", "?limit=1000"), { token = other })
      assert.is_nil(r.body:find("private_", 1, true))
    end
  end)
end)

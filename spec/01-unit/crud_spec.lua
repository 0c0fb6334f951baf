-- scripts/lib/crud.lua in plain Lua: request helpers, the SQL it builds from
-- a field table, how database failures become answers, and the route
-- entries it makes, against a scripted rt.db.
local unit = require "helpers.unit"

local NULL = unit.null
local http_error = unit.http_error

local db = unit.db()
local rt = unit.rt()
local prelude_rt = rt
local crud = unit.install({ rt = rt, ["rt.db"] = db, ["rt.json"] = unit.json },
  { "lib.crud" })

-- A resource with one field of every kind.
local things = {
  table = "things", what = "thing", plural = "things", tag = "things",
  soft = true, deleted_status = "gone", audit = true, order = "id",
  columns = "id, code, name",
  fields = {
    { "code", crud.CODE, alias = "thing_code", required = true },
    { "name", crud.text(10) },
    { "kind", { type = "string" }, create_only = true },
    { "meta", { type = "object" }, json = true },
  },
}

-- The same without soft delete and audit columns.
local plain = {
  table = "plain", what = "plain row", plural = "plain rows", tag = "plain",
  order = "code", columns = "id, code", fields = { { "code", crud.CODE } },
}

local TENANT_USER = { scope = "tenant", id = "7" }

local function req(fields)
  local r = { params = {}, query = {}, tenant = { id = 3 }, user = TENANT_USER }
  for k, v in pairs(fields or {}) do
    r[k] = v
  end
  if r.body then
    local body = r.body
    r.json = function()
      return body
    end
  end
  return r
end

before_each(function()
  db.reset()
end)

after_each(function()
  assert.same({}, db.replies, "every statement a spec expects is run")
end)

describe("crud.page", function()
  local function page(query)
    return crud.page(req({ query = query }))
  end

  it("defaults to limit 100 from the start", function()
    assert.same({ 100, 0 }, { page({}) })
  end)

  it("reads limit and skip", function()
    assert.same({ 5, 10 }, { page({ limit = "5", skip = "10" }) })
    assert.same({ 1000, 0 }, { page({ limit = "1000", skip = "0" }) })
  end)

  it("answers 422 naming each bad parameter", function()
    local e = http_error(page, { limit = "0" })
    assert.same({ 422, "validation_failed" }, { e.status, e.code })
    assert.same({ limit = "must be from 1 to 1000" }, e.fields)
    e = http_error(page, { limit = "1001", skip = "-1" })
    assert.same({ limit = "must be from 1 to 1000", skip = "must be a whole number" },
      e.fields)
    e = http_error(page, { skip = "1234567890" })
    assert.same({ skip = "must be a whole number" }, e.fields)
    e = http_error(page, { limit = "abc" })
    assert.equal("limit must be a whole number", e.message)
  end)
end)

describe("crud.id_param", function()
  it("gives a positive id as an integer", function()
    local id = crud.id_param(req({ params = { id = "42" } }), "id", "thing")
    assert.equal(42, id)
    assert.equal("integer", math.type(id))
  end)

  it("answers 404 for anything that is not an id", function()
    for _, s in ipairs({ "0", "01", "-1", "1.5", "1e3", "abc", "", "1234567890123456789" }) do
      local e = http_error(crud.id_param, req({ params = { id = s } }), "id", "thing")
      assert.same({ 404, "not_found", "thing not found" }, { e.status, e.code, e.message }, s)
    end
    http_error(crud.id_param, req(), "id", "thing")
  end)
end)

describe("crud.actor", function()
  it("is a tenant user's id and NULL for anyone else", function()
    assert.equal("7", crud.actor(req()))
    assert.equal(NULL, crud.actor(req({ user = { scope = "core", id = "1" } })))
    assert.equal(NULL, crud.actor(req({ user = { scope = "tenant", id = "key:9" } })))
    assert.equal(NULL, crud.actor({}))
  end)
end)

describe("crud.body_schema", function()
  it("takes fields under their names and aliases, tenant_id and extras", function()
    local s = crud.body_schema(things, true, { password = { type = "string" } })
    assert.equal("object", s.type)
    assert.is_false(s.additionalProperties)
    local names = {}
    for k in pairs(s.properties) do
      names[#names + 1] = k
    end
    table.sort(names)
    assert.same({ "code", "kind", "meta", "name", "password", "tenant_id", "thing_code" },
      names)
    assert.equal(crud.CODE, s.properties.thing_code)
  end)

  it("leaves create-only fields out of an update", function()
    local s = crud.body_schema(things, false)
    assert.is_nil(s.properties.kind)
    assert.is_table(s.properties.code)
  end)
end)

describe("crud.input", function()
  it("maps aliases to the fields' own names", function()
    local values = crud.input(req({ body = { thing_code = "a1", name = "A" } }), things, true)
    assert.same({ code = "a1", name = "A" }, values)
  end)

  it("accepts an alias that repeats its field and refuses one that differs", function()
    assert.same({ code = "a1" },
      crud.input(req({ body = { code = "a1", thing_code = "a1" } }), things, true))
    local e = http_error(crud.input, req({ body = { code = "a1", thing_code = "b2" } }),
      things, true)
    assert.same({ thing_code = "conflicts with code" }, e.fields)
  end)

  it("requires required fields on create only", function()
    local e = http_error(crud.input, req({ body = { name = "A" } }), things, true)
    assert.same({ 422, { code = "is required" } }, { e.status, e.fields })
    assert.same({ name = "A" }, crud.input(req({ body = { name = "A" } }), things, false))
  end)

  it("drops create-only fields from an update", function()
    assert.same({ code = "a1", kind = "k" },
      crud.input(req({ body = { code = "a1", kind = "k" } }), things, true))
    assert.same({}, crud.input(req({ body = { kind = "k" } }), things, false))
  end)

  it("takes tenant_id only when it is the request's tenant", function()
    assert.same({ code = "a1" },
      crud.input(req({ body = { code = "a1", tenant_id = 3 } }), things, true))
    local e = http_error(crud.input, req({ body = { tenant_id = 4 } }), things, true)
    assert.same({ code = "is required", tenant_id = "must be the tenant of this request" },
      e.fields)
  end)
end)

describe("crud SQL", function()
  it("lists live rows in order, a page at a time", function()
    db.reply({ { { id = 1 } } })
    assert.same({ { id = 1 } }, crud.list(req({ query = { limit = "2", skip = "4" } }),
      things))
    assert.equal("SELECT id, code, name FROM things WHERE true AND deleted_at IS NULL "
      .. "ORDER BY id LIMIT $1 OFFSET $2", db.calls[1].sql)
    assert.same({ 2, 4, n = 2 }, db.calls[1].args)
    db.reply({ {} })
    crud.list(req(), plain)
    assert.equal("SELECT id, code FROM plain WHERE true ORDER BY code LIMIT $1 OFFSET $2",
      db.calls[2].sql)
  end)

  it("fetches a live row or answers 404", function()
    db.reply({ { id = 5 } }, { nil })
    assert.same({ id = 5 }, crud.fetch(things, 5))
    assert.equal("SELECT id, code, name FROM things WHERE id = $1 AND deleted_at IS NULL",
      db.calls[1].sql)
    local e = http_error(crud.fetch, things, 6)
    assert.same({ 404, "thing not found" }, { e.status, e.message })
  end)

  it("inserts the given fields, JSON as jsonb, extras and the audit columns", function()
    db.reply({ { id = 9 } })
    local row = crud.insert(req(), things, { meta = { a = 1 }, code = "c1" },
      { { "secret", "s" } })
    assert.same({ id = 9 }, row)
    local call = db.calls[1]
    assert.equal("INSERT INTO things (code, meta, secret, created_by, updated_by) "
      .. "VALUES ($1, $2::jsonb, $3, $4, $4) RETURNING id, code, name", call.sql)
    assert.same({ "c1", '{"a":1}', "s", "7", n = 4 }, call.args)
    db.reply({ { id = 1 } })
    crud.insert(req(), plain, { code = "p" })
    assert.equal("INSERT INTO plain (code) VALUES ($1) RETURNING id, code", db.calls[2].sql)
  end)

  it("updates the given fields but never a create-only one", function()
    db.reply({ { id = 2 } })
    crud.update(req(), things, 2, { name = "N", kind = "k", meta = { b = true } },
      { { "secret", "s" } })
    local call = db.calls[1]
    assert.equal("UPDATE things SET name = $2, meta = $3::jsonb, secret = $4, "
      .. "updated_at = now(), updated_by = $5 WHERE id = $1 AND deleted_at IS NULL "
      .. "RETURNING id, code, name", call.sql)
    assert.same({ 2, "N", '{"b":true}', "s", "7", n = 5 }, call.args)
  end)

  it("reads the row when there is nothing to update, 404 when it is gone", function()
    db.reply({ { id = 3, code = "p" } })
    assert.same({ id = 3, code = "p" }, crud.update(req(), plain, 3, {}))
    assert.equal("SELECT id, code FROM plain WHERE id = $1", db.calls[1].sql)
    db.reply({ nil })
    local e = http_error(crud.update, req(), things, 4, { name = "N" })
    assert.same({ 404, "thing not found" }, { e.status, e.message })
  end)

  it("deletes softly with the deleted status, or for real", function()
    db.reply({ 1 }, { 1 })
    crud.remove(req(), things, 8)
    assert.equal("UPDATE things SET deleted_at = now(), updated_at = now(), updated_by = $2, "
      .. "status = 'gone' WHERE id = $1 AND deleted_at IS NULL", db.calls[1].sql)
    assert.same({ 8, "7", n = 2 }, db.calls[1].args)
    crud.remove(req(), plain, 8)
    assert.equal("DELETE FROM plain WHERE id = $1", db.calls[2].sql)
    db.reply({ 0 })
    local e = http_error(crud.remove, req(), plain, 8)
    assert.same({ 404, "plain row not found" }, { e.status, e.message })
  end)
end)

describe("crud database failures", function()
  local function unique(constraint)
    return { nil, "duplicate key", { sqlstate = "23505",
      message = 'duplicate key value violates unique constraint "' .. constraint .. '"' } }
  end

  it("answers 409 naming the one column of a taken unique key", function()
    db.reply(unique("things_tenant_id_code_key"))
    local e = http_error(crud.query_one, "thing", "INSERT")
    assert.same({ 409, "conflict", "thing already exists (code)", { code = "is already taken" } },
      { e.status, e.code, e.message, e.fields })
  end)

  it("names no field for a key over several columns", function()
    db.reply(unique("user_roles_tenant_id_user_id_role_id_key"))
    local e = http_error(crud.exec, "role assignment", "INSERT")
    assert.same({ 409, "role assignment already exists" }, { e.status, e.message })
    assert.is_nil(e.fields)
  end)

  it("answers 422 for foreign key and check violations", function()
    db.reply({ nil, "fk", { sqlstate = "23503" } }, { nil, "check", { sqlstate = "23514" } })
    local e = http_error(crud.query, "menu", "UPDATE")
    assert.same({ 422, "menu refers to something that does not exist" }, { e.status, e.message })
    e = http_error(crud.query, "menu", "UPDATE")
    assert.same({ 422, "menu breaks a rule of the data model" }, { e.status, e.message })
  end)

  it("makes a route return nil, err for any other failure", function()
    local entry = crud.route { handler = function()
      return crud.query("thing", "SELECT 1")
    end }
    assert.equal("tenant", entry.scope)
    db.reply({ nil, "connection lost", { sqlstate = "08006" } })
    local res, err = entry.handler(req())
    assert.is_nil(res)
    assert.equal("connection lost", err)
    -- a failure without err_t (the pool timed out) goes the same way
    db.reply({ nil, "timeout" })
    assert.same({ nil, "timeout" }, { entry.handler(req()) })
  end)

  it("lets HTTP errors and bugs through a route unchanged", function()
    local entry = crud.route { scope = "any", handler = function(r)
      if r.params.bug then
        error("bug here", 0)
      end
      crud.not_found("thing")
    end }
    assert.equal("any", entry.scope)
    assert.equal(404, http_error(entry.handler, req()).status)
    local ok, e = pcall(entry.handler, req({ params = { bug = "1" } }))
    assert.is_false(ok)
    assert.equal("bug here", e)
  end)
end)

describe("crud route entries", function()
  local prelude = assert(loadfile("runtime/lua/prelude.lua"))(debug.traceback,
    unit.json.encode, unit.json.decode, prelude_rt)

  it("are route tables the runtime accepts, hooks left out", function()
    local hook = function() end
    local routes = prelude.collect("things.lua", {
      ["/things"] = {
        GET = crud.list_route(things, { permission = "thing_read" }),
        POST = crud.create_route(things, { permission = "thing_create", before = hook }),
      },
      ["/things/:id"] = {
        GET = crud.get_route(things, { permission = "thing_read" }),
        PATCH = crud.update_route(things, { permission = "thing_update", before = hook }),
        DELETE = crud.delete_route(things, { permission = "thing_delete", before = hook,
          after = hook }),
      },
    })
    assert.equal(5, #routes)
    local by = {}
    for _, r in ipairs(routes) do
      by[r.method .. " " .. r.pattern] = r
    end
    assert.same({ "tenant", "thing_read", "List things", { "things" } },
      { by["GET /things"].scope, by["GET /things"].permission, by["GET /things"].summary,
        by["GET /things"].tags })
    assert.equal("Create a thing", by["POST /things"].summary)
    assert.same(crud.body_schema(things, true), by["POST /things"].body)
    assert.same(crud.body_schema(things, false), by["PATCH /things/:id"].body)
    assert.equal("Delete a thing (soft)", by["DELETE /things/:id"].summary)
  end)

  it("take route fields from opts over the defaults", function()
    local e = crud.list_route(things, { permission = "thing_read", scope = "any",
      summary = "List the tenant's things (admin alias)" })
    assert.same({ "any", "thing_read", "List the tenant's things (admin alias)" },
      { e.scope, e.permission, e.summary })
    assert.equal("Delete a plain row", crud.delete_route(plain, {}).summary)
  end)

  it("list and get answer rows", function()
    db.reply({ { { id = 1 }, { id = 2 } } }, { { id = 2 } })
    assert.same({ json = { { id = 1 }, { id = 2 } } },
      crud.list_route(things).handler(req()))
    assert.same({ json = { id = 2 } },
      crud.get_route(things).handler(req({ params = { id = "2" } })))
    assert.same({ 2, n = 1 }, db.calls[2].args)
  end)

  it("create runs its hook on the values, then inserts (201)", function()
    local seen
    local e = crud.create_route(things, { before = function(r, values)
      seen = r.tenant.id
      values.name = "from hook"
    end })
    db.reply({ { id = 4 } })
    local res = e.handler(req({ body = { code = "c" } }))
    assert.same({ status = 201, json = { id = 4 } }, res)
    assert.equal(3, seen)
    assert.same({ "c", "from hook", "7", n = 3 }, db.calls[1].args)
  end)

  it("update reads the row, runs its hook, then writes", function()
    local got
    local e = crud.update_route(things, { before = function(_, current, values)
      got = { current = current, values = values }
    end })
    db.reply({ { id = 2, code = "old" } }, { { id = 2, code = "new" } })
    local res = e.handler(req({ params = { id = "2" }, body = { thing_code = "new" } }))
    assert.same({ json = { id = 2, code = "new" } }, res)
    assert.same({ current = { id = 2, code = "old" }, values = { code = "new" } }, got)
    assert.matches("^UPDATE things SET code = %$2", db.calls[2].sql)
  end)

  it("delete runs before, removes, runs after (204); a refusal removes nothing", function()
    local order = {}
    local e = crud.delete_route(plain, {
      before = function(_, current)
        order[#order + 1] = "before " .. current.code
        if current.code == "keep" then
          crud.conflict("keep stays")
        end
      end,
      after = function(_, current)
        order[#order + 1] = "after " .. current.code
      end,
    })
    db.reply({ { id = 1, code = "x" } }, { 1 })
    assert.same({ status = 204 }, e.handler(req({ params = { id = "1" } })))
    assert.same({ "before x", "after x" }, order)
    db.reset()
    db.reply({ { id = 2, code = "keep" } })
    assert.equal(409, http_error(e.handler, req({ params = { id = "2" } })).status)
    assert.equal(1, #db.calls) -- only the read
  end)
end)

describe("crud link entries", function()
  local events
  local link = {
    owner = things, target = plain, what = "thing link", tags = { "things" },
    param = "plain_id", by_code = "plain_code", stamp = "linked_at",
    list = "SELECT p.id FROM links l JOIN plain p ON p.id = l.plain_id WHERE l.thing_id = $1",
    insert = "INSERT INTO links (thing_id, plain_id, created_by) VALUES ($1, $2, $3) "
      .. "RETURNING created_at",
    delete = "DELETE FROM links WHERE thing_id = $1 AND plain_id = $2",
    guard = function(_, owner, target)
      events[#events + 1] = "guard " .. owner.id .. " " .. target.id
    end,
    grant = function(_, owner, target)
      events[#events + 1] = "grant " .. owner.id .. " " .. target.id
    end,
    changed = function(_, owner)
      events[#events + 1] = "changed " .. owner.id
    end,
  }

  before_each(function()
    events = {}
  end)

  it("lists the owner's linked rows a page at a time", function()
    db.reply({ { id = 1 } }, { { { id = 5 } } })
    local res = crud.links_route(link).handler(req({ params = { id = "1" },
      query = { limit = "3" } }))
    assert.same({ json = { { id = 5 } } }, res)
    assert.equal(link.list .. " LIMIT $2 OFFSET $3", db.calls[2].sql)
    assert.same({ 1, 3, 0, n = 3 }, db.calls[2].args)
  end)

  it("answers 404 when the owner does not exist", function()
    db.reply({ nil })
    local e = http_error(crud.links_route(link).handler, req({ params = { id = "1" } }))
    assert.equal("thing not found", e.message)
  end)

  it("links the target named by id or code, with guard, grant and changed", function()
    local e = crud.link_route(link)
    assert.same({ plain_id = { type = "integer", minimum = 1 }, plain_code = crud.CODE },
      e.body.properties)
    db.reply({ { id = 1 } }, { { id = 6, code = "six" } }, { { created_at = "now" } })
    local res = e.handler(req({ params = { id = "1" }, body = { plain_code = "six" } }))
    assert.same({ status = 201, json = { id = 6, code = "six", linked_at = "now" } }, res)
    assert.equal("SELECT id, code FROM plain WHERE (id = $1 OR code = $2)", db.calls[2].sql)
    assert.same({ nil, "six", n = 2 }, db.calls[2].args)
    assert.same({ 1, 6, "7", n = 3 }, db.calls[3].args)
    assert.same({ "guard 1 6", "grant 1 6", "changed 1" }, events)
  end)

  it("passes the actor only to an insert that takes $3", function()
    local two = setmetatable({ by_code = false,
      insert = "INSERT INTO links (thing_id, plain_id) VALUES ($1, $2) RETURNING created_at" },
      { __index = link })
    db.reply({ { id = 1 } }, { { id = 6 } }, { { created_at = "t" } })
    crud.link_route(two).handler(req({ params = { id = "1" }, body = { plain_id = 6 } }))
    assert.equal("SELECT id, code FROM plain WHERE (id = $1)", db.calls[2].sql)
    assert.same({ 1, 6, n = 2 }, db.calls[3].args)
  end)

  it("answers 422 when the body names no target or a missing one", function()
    local e = crud.link_route(link)
    db.reply({ { id = 1 } })
    local err = http_error(e.handler, req({ params = { id = "1" }, body = {} }))
    assert.same({ plain_id = "is required" }, err.fields)
    db.reply({ { id = 1 } }, { nil })
    err = http_error(e.handler, req({ params = { id = "1" }, body = { plain_code = "no" } }))
    assert.same({ plain_code = "does not exist" }, err.fields)
    db.reply({ { id = 1 } }, { nil })
    err = http_error(e.handler, req({ params = { id = "1" }, body = { plain_id = 9 } }))
    assert.same({ plain_id = "does not exist" }, err.fields)
    assert.same({}, events)
  end)

  it("unlinks (204), or answers 404 when not linked", function()
    local e = crud.unlink_route(link)
    db.reply({ { id = 1 } }, { { id = 6 } }, { 1 })
    assert.same({ status = 204 }, e.handler(req({ params = { id = "1", plain_id = "6" } })))
    assert.equal(link.delete, db.calls[3].sql)
    assert.same({ 1, 6, n = 2 }, db.calls[3].args)
    assert.same({ "guard 1 6", "changed 1" }, events)
    events = {}
    db.reply({ { id = 1 } }, { { id = 6 } }, { 0 })
    local err = http_error(e.handler, req({ params = { id = "1", plain_id = "6" } }))
    assert.same({ 404, "thing link not found" }, { err.status, err.message })
    assert.same({ "guard 1 6" }, events)
  end)
end)

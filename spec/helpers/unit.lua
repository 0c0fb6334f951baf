-- Helpers for unit specs of scripts/lib modules and route files, in plain
-- Lua without a server: the rt module as the prelude builds it (rt.error,
-- rt.invalid, rt.validate), a scripted stand-in for rt.db, and a loader
-- that runs scripts/<name>.lua as `require "<name>"` would in the sandbox.
local cjson = require "cjson"

local M = {}

M.null = cjson.null

-- A fresh rt table, completed by the prelude as in a worker state.
function M.rt()
  local rt = { null = cjson.null }
  assert(loadfile("runtime/lua/prelude.lua"))(debug.traceback, cjson.encode,
    cjson.decode, rt)
  return rt
end

-- rt.json as far as the scripts use it.
M.json = {
  encode = cjson.encode,
  decode = cjson.decode,
  null = cjson.null,
  array = function(t)
    return t or {}
  end,
}

-- A stand-in for rt.db: query, query_one and exec record each call in
-- db.calls ({ fn, sql, args }) and answer with the next of db.replies, a list
-- of { result, err, err_t }. A call with no reply left is an error, so a
-- spec states every statement it expects. db.reset() clears both.
function M.db()
  local db = { calls = {}, replies = {} }
  local function fn(name)
    return function(sql, ...)
      db.calls[#db.calls + 1] = { fn = name, sql = sql, args = table.pack(...) }
      local reply = table.remove(db.replies, 1)
      if not reply then
        error("unexpected " .. name .. ": " .. sql, 2)
      end
      return reply[1], reply[2], reply[3]
    end
  end
  db.query, db.query_one, db.exec = fn("query"), fn("query_one"), fn("exec")
  function db.reset()
    db.calls, db.replies = {}, {}
  end
  -- Queues the replies given, in order.
  function db.reply(...)
    for _, r in ipairs({ ... }) do
      db.replies[#db.replies + 1] = r
    end
  end
  return db
end

-- Installs modules (name -> table) for require, runs scripts/<name>.lua
-- for each name of libs (dots as folders) into package.loaded, and returns
-- the last one. Busted restores package.loaded after each spec file.
function M.install(modules, libs)
  for name, mod in pairs(modules) do
    package.loaded[name] = mod
  end
  local last
  for _, name in ipairs(libs or {}) do
    package.loaded[name] = nil
    last = dofile("scripts/" .. name:gsub("%.", "/") .. ".lua")
    package.loaded[name] = last
  end
  return last
end

-- Calls fn(...) and returns the HTTP error it raised (rt.error's value:
-- status, code, message, fields); fails the spec when fn returned or raised
-- anything else.
function M.http_error(fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected an HTTP error, got a result")
  assert(type(e) == "table" and e.status, "expected an HTTP error, got: " .. tostring(e))
  return e
end

return M

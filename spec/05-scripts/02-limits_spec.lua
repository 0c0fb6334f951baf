-- Per-request limits (docs/SCRIPTS.md): a script that loops, allocates or
-- recurses without end gets a 500 for that request only; the log names the
-- limit; the next request on the same server is served normally.
local h = require "helpers"

local fixtures = h.root .. "/spec/fixtures/sandbox"

local function expect_internal_error(r)
  assert.equal(500, r.status, r.body)
  assert.equal("internal_error", r.json.error)
  -- Never the Lua message.
  assert.not_matches("limit", r.body)
  assert.not_matches("%.lua", r.body)
end

describe("script limits", function()
  local srv

  setup(function()
    srv = h.start({
      scripts = fixtures,
      env = {
        RUNTIME_SCRIPTS_INSTRUCTION_LIMIT = "20000000",
        RUNTIME_SCRIPTS_MEMORY_LIMIT_MB = "32",
        RUNTIME_SCRIPTS_TIME_LIMIT_MS = "10000",
      },
    })
  end)

  teardown(function()
    srv:stop()
  end)

  local function ends_request(case, limit)
    local r = srv:request({ path = "/limits/" .. case, headers = { ["X-Request-Id"] = case } })
    expect_internal_error(r)
    local ok = srv:request({ path = "/ok" })
    assert.equal(200, ok.status, ok.body)
    if limit then
      h.sleep(0.05)
      assert.matches('"request_id":"' .. case:gsub("%-", "%%-")
        .. '","msg":"GET /limits/:case [^"]*: ' .. limit .. " limit exceeded", srv:logs())
    end
  end

  it("stops an infinite loop", function()
    ends_request("loop", "instruction")
  end)

  it("stops a loop that pcall keeps restarting", function()
    ends_request("pcall_loop", "instruction")
  end)

  it("stops a loop whose xpcall handler loops too", function()
    ends_request("xpcall_loop", "instruction")
  end)

  it("stops a loop of looping coroutines", function()
    ends_request("coroutine_loop", "instruction")
  end)

  it("stops a table that grows without end", function()
    ends_request("table_bomb", "memory")
  end)

  it("stops a string that doubles without end", function()
    ends_request("concat_bomb", "memory")
  end)

  it("ends the request even when the script catches the memory error", function()
    ends_request("caught_bomb", "memory")
  end)

  it("refuses a huge string.rep before allocating it", function()
    ends_request("huge_rep", "memory")
  end)

  it("ends deep recursion with an error", function()
    ends_request("recursion")
    ends_request("c_recursion")
  end)

  it("refuses to encode a table that contains itself", function()
    ends_request("self_json")
    ends_request("self_response")
    h.sleep(0.05)
    assert.matches("a table contains itself", srv:logs())
  end)

  it("stops JSON encoding of a structure that is exponentially large", function()
    ends_request("wide_json", "memory")
  end)

  -- A pinned worker would never answer: each request must come back within
  -- curl's deadline, with the limit's 500, and the next one must be served.
  local function answers(case)
    local r = srv:request({ path = "/limits/" .. case, raw = "--max-time 8" })
    assert.is_true(r.status ~= 0, case .. ": no answer, a worker is pinned")
    return r
  end

  it("runs a __close set after setmetatable under the limits", function()
    for _, case in ipairs({ "close_in_wrap", "close_in_close", "close_in_main" }) do
      for _ = 1, 2 do -- each worker (threads = 2) in turn, as it comes
        expect_internal_error(answers(case))
        assert.equal(200, srv:request({ path = "/ok" }).status)
      end
    end
  end)

  it("still closes a coroutine that an ordinary error ended", function()
    local r = answers("close_on_error")
    assert.equal(200, r.status, r.body)
    assert.equal(2, r.json.result)
  end)

  it("never closes a coroutine that a limit ended, in a later request either", function()
    local closed
    for _ = 1, 8 do
      local r = answers("close_later")
      if r.status == 200 then
        closed = r
      else
        expect_internal_error(r)
      end
    end
    assert.is_table(closed, "no request closed a kept coroutine")
    assert.is_false(closed.json.result)
    assert.equal(200, srv:request({ path = "/ok" }).status)
  end)

  it("never runs a __gc added after setmetatable", function()
    for _ = 1, 3 do
      local r = answers("gc_later")
      assert.equal(200, r.status, r.body)
      assert.equal(0, r.json.result)
    end
  end)

  it("rebuilds a state that module-level data filled up", function()
    local failed
    for _ = 1, 6 do
      local r = srv:request({ path = "/limits/hoard" })
      if r.status == 500 then
        failed = true
        break
      end
      assert.equal(200, r.status)
    end
    assert.is_true(failed)
    h.sleep(0.05)
    assert.matches("the worker's Lua state was rebuilt", srv:logs())
    -- Fresh states: every worker can hoard again.
    for _ = 1, 4 do
      local r = srv:request({ path = "/ok" })
      assert.equal(200, r.status)
      assert.is_true(r.json.hoard <= 2)
    end
  end)
end)

describe("script time limit", function()
  local srv

  setup(function()
    srv = h.start({
      scripts = fixtures,
      threads = 2,
      env = {
        RUNTIME_SCRIPTS_INSTRUCTION_LIMIT = "0",
        RUNTIME_SCRIPTS_TIME_LIMIT_MS = "1500",
      },
    })
  end)

  teardown(function()
    srv:stop()
  end)

  it("stops a loop at the deadline and logs the time limit", function()
    local r = srv:request({ path = "/limits/loop", headers = { ["X-Request-Id"] = "spin-1" } })
    expect_internal_error(r)
    h.sleep(0.05)
    assert.matches('"request_id":"spin%-1","msg":"GET /limits/:case [^"]*: time limit '
      .. "exceeded %(scripts.time_limit_ms = 1500%)", srv:logs())
  end)

  it("counts time spent in the database against the deadline", function()
    local r = srv:request({ path = "/limits/slow_query" })
    expect_internal_error(r)
  end)

  it("serves other requests while one loops", function()
    local status_file = os.tmpname()
    h.run(string.format("curl -s -o /dev/null -w '%%{http_code} %%{time_total}' "
      .. "http://127.0.0.1:%d/limits/loop >%s 2>/dev/null &", srv.port, status_file))
    h.sleep(0.2)
    for _ = 1, 5 do
      local out = h.run(string.format("curl -s -o /dev/null -w '%%{http_code} %%{time_total}' "
        .. "http://127.0.0.1:%d/ok", srv.port))
      local code, secs = out:match("^(%d+) ([%d.]+)")
      assert.equal("200", code)
      assert.is_true(tonumber(secs) < 0.5, "an /ok request took " .. secs .. " s")
    end
    local looped
    for _ = 1, 60 do
      looped = h.read_all(status_file) or ""
      if looped:match("^%d+") then
        break
      end
      h.sleep(0.1)
    end
    os.remove(status_file)
    local code, secs = looped:match("^(%d+) ([%d.]+)")
    assert.equal("500", code)
    assert.is_true(tonumber(secs) >= 1.4)
    assert.equal(200, srv:request({ path = "/ok" }).status)
  end)
end)

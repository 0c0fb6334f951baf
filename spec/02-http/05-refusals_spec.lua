-- Requests the runtime must refuse with a clear status, never a 500 or a
-- broken connection: repeated selector headers, a refusal to a client that
-- waits for "100 Continue", and JSON the decoder and PostgreSQL disagree on.
local h = require "helpers"

describe("refusals", function()
  local srv, big

  setup(function()
    h.psql([[
      DROP TABLE IF EXISTS json_docs;
      CREATE TABLE json_docs (id serial PRIMARY KEY, doc jsonb);
      GRANT SELECT, INSERT ON json_docs TO rt_app;
      GRANT USAGE ON SEQUENCE json_docs_id_seq TO rt_app;
    ]])
    srv = h.start()
    big = os.tmpname()
    assert(h.run("head -c 20000000 /dev/zero > " .. h.sh_quote(big) .. " && echo ok")
      :find("ok", 1, true))
  end)

  teardown(function()
    srv:stop()
    os.remove(big)
  end)

  -- curl with extra arguments; returns status, JSON body, curl's exit code,
  -- body, and the headers of every response (interim ones too).
  local function curl(args, path)
    local out, head = os.tmpname(), os.tmpname()
    local res = h.run("curl -s -S --max-time 30 -o " .. h.sh_quote(out) .. " -D "
      .. h.sh_quote(head) .. " -w '%{http_code}' " .. args .. " "
      .. h.sh_quote("http://127.0.0.1:" .. srv.port .. path) .. " 2>/dev/null; echo \" $?\"")
    local body, headers = h.read_all(out) or "", h.read_all(head) or ""
    os.remove(out)
    os.remove(head)
    local code, rc = res:match("^(%d+)%s+(%d+)")
    local ok, json = pcall(require("cjson").decode, body)
    return tonumber(code), ok and json or nil, tonumber(rc), body, headers
  end

  -- A request written on a socket as is; returns the status line's code.
  local function raw(request)
    local f = os.tmpname()
    h.write_all(f, request)
    local out = h.run("bash -c " .. h.sh_quote("exec 3<>/dev/tcp/127.0.0.1/" .. srv.port
      .. " && cat " .. h.sh_quote(f) .. " >&3 && timeout 5 head -c 4096 <&3"))
    os.remove(f)
    return tonumber(out:match("^HTTP/1%.1 (%d+)")), out
  end

  describe("duplicate selector headers", function()
    it("answers 400 for two Host headers", function()
      local status, out = raw("GET /echo/a/b HTTP/1.1\r\nHost: one\r\nHost: two\r\n"
        .. "Connection: close\r\n\r\n")
      assert.equal(400, status, out)
      assert.truthy(out:find('"duplicate_header"', 1, true), out)
    end)

    for _, name in ipairs({ "X-Tenant-Id", "Authorization" }) do
      it("answers 400 for two " .. name .. " headers", function()
        local status, json, _, body = curl("-H " .. h.sh_quote(name .. ": one")
          .. " -H " .. h.sh_quote(name .. ": two"), "/echo/a/b")
        assert.equal(400, status, body)
        assert.equal("duplicate_header", json.error)
        assert.truthy(json.message:find(name, 1, true), json.message)
        assert.truthy(json.request_id)
      end)
    end

    it("still serves one of each", function()
      local status, _, _, body = curl("-H 'X-Tenant-Id: nobody' -H 'Authorization: x'",
        "/echo/a/b")
      assert.equal(404, status, body) -- the unknown tenant, not the headers
    end)
  end)

  describe("Expect: 100-continue", function()
    local function upload(method, path, file)
      return curl("-X " .. method .. " -H 'Expect: 100-continue' --expect100-timeout 10 "
        .. "-H 'Content-Type: application/json' --data-binary @" .. h.sh_quote(file), path)
    end

    it("answers a refused request with its final status instead of 100", function()
      -- 20 MB (over max_body, so the 413 check must not come first on a route)
      -- and 60 kB (under it: a route refused before its body is read)
      local small = os.tmpname()
      h.write_all(small, ("x"):rep(60000))
      for _, try in ipairs({ { "POST", "/healthz", 405, big },
        { "POST", "/no/such/path", 404, big }, { "GET", "/private", 401, small },
        { "POST", "/echo/a/b", 413, big } }) do
        local method, path, want, file = try[1], try[2], try[3], try[4]
        local status, json, rc, body, headers = upload(method, path, file)
        assert.equal(want, status, path .. ": " .. body)
        assert.equal(0, rc, path .. ": curl failed")
        assert.truthy(json and json.request_id, path)
        assert.is_nil(headers:find(" 100 Continue", 1, true), path .. ": " .. headers)
      end
      os.remove(small)
    end)

    it("still sends 100 Continue to a request that goes on", function()
      local small = os.tmpname()
      h.write_all(small, '{"x": 1}')
      local status, json = curl("-X POST -H 'Expect: 100-continue' "
        .. "-H 'Content-Type: application/json' --data-binary @" .. h.sh_quote(small),
        "/echo/a/b")
      os.remove(small)
      assert.equal(200, status)
      assert.equal(1, json.got.x)
    end)
  end)

  describe("JSON", function()
    local function post(body)
      return srv:request({ method = "POST", path = "/json-docs",
        headers = { ["Content-Type"] = "application/json" }, body = body })
    end

    it("reads back from a list a value stored at the deepest nesting accepted", function()
      -- json.max_depth is 64: the body object plus 63 levels in doc
      local doc = ("["):rep(63) .. "1" .. ("]"):rep(63)
      local r = post('{"doc": ' .. doc .. "}")
      assert.equal(201, r.status, r.body)
      r = srv:request({ path = "/json-docs" })
      assert.equal(200, r.status, r.body)
      assert.truthy(r.body:find(doc, 1, true))
      -- one level more is refused when it comes in
      r = post('{"doc": [' .. doc .. "]}")
      assert.equal(400, r.status, r.body)
      assert.equal("invalid_json", r.json.error)
    end)

    it("refuses \\u0000 in a string with 400", function()
      local r = post('{"doc": {"name": "a\\u0000b"}}')
      assert.equal(400, r.status, r.body)
      assert.equal("invalid_json", r.json.error)
      assert.truthy(r.json.message:find("NUL", 1, true), r.json.message)
    end)
  end)
end)

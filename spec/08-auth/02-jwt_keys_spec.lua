-- Token algorithms and keys, end to end: RS256 and ES256 servers with key
-- files made by openssl, tokens signed elsewhere with the right and the
-- wrong key, the HS256/public-key confusion attack, key rotation by kid
-- across restarts (and HS256 rotation with earlier secrets), and start-up
-- errors for bad key settings.
local h = require "helpers"
local mig = require "helpers.migrate"
local jwt = require "helpers.jwt"
local cjson = require "cjson"

local EMAIL, PASSWORD = "keys@example.com", "correct horse battery"
local SECRET = "spec-secret-0123456789abcdef0123456789"

describe("token algorithms and keys", function()
  local ctx, keys, user_id

  local function key(name, ext)
    return keys .. "/" .. name .. "." .. (ext or "pem")
  end

  -- auth settings (RUNTIME_AUTH_* names without the prefix) -> env table
  local function auth_env(settings)
    local env = {}
    for k, v in pairs(settings) do
      env["RUNTIME_AUTH_" .. k:upper()] = v
    end
    return env
  end

  local function start(settings, extra)
    return h.start({ scripts = ctx.scripts, database_url = ctx.app_url,
      env = auth_env(settings), extra = extra })
  end

  local function login(srv)
    local r = srv:request({ method = "POST", path = "/api/v1/auth/login",
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ username = EMAIL, password = PASSWORD }) })
    assert.equal(200, r.status, r.body)
    return r.json.access_token
  end

  local function me(srv, token)
    return srv:request({ path = "/api/v1/auth/me",
      headers = { Authorization = "Bearer " .. token } })
  end

  -- What `runtime serve` says when it refuses to start (killed after 10 s
  -- if it does start).
  local function refuses(settings)
    local cfg = h.config_file(string.format("{ http = { port = %d }, scripts = { dir = %q } }",
      h.free_port(), ctx.scripts))
    local env = auth_env(settings)
    env.RUNTIME_DATABASE_URL = ctx.app_url
    local assigns = {}
    for k, v in pairs(env) do
      assigns[#assigns + 1] = k .. "=" .. h.sh_quote(v)
    end
    local out = h.run("env " .. table.concat(assigns, " ") .. " timeout -s KILL 10 "
      .. h.sh_quote(h.bin) .. " serve --config " .. h.sh_quote(cfg) .. " 2>&1; echo exit=$?")
    os.remove(cfg)
    return out
  end

  setup(function()
    ctx = mig.new("jwt_keys")
    ctx:copy_api()
    user_id = ctx:platform_user(EMAIL, PASSWORD)
    keys = ctx.dir .. "/keys"
    jwt.make_keys(keys, { ra = "rsa", rb = "rsa", rx = "rsa", small = "rsa1024",
      ea = "ec", eb = "ec", ex = "ec", e384 = "ec384" })
  end)

  teardown(function()
    ctx:destroy()
  end)

  for _, case in ipairs({ { alg = "RS256", a = "ra", b = "rb", x = "rx" },
    { alg = "ES256", a = "ea", b = "eb", x = "ex" } }) do
    describe(case.alg, function()
      local srv

      setup(function()
        srv = start({ jwt_algorithm = case.alg, jwt_kid = "a",
          jwt_private_key_file = key(case.a),
          jwt_public_keys = "a=" .. key(case.a, "pub") })
      end)

      teardown(function()
        srv:stop()
      end)

      it("signs logins with the key file and verifies them", function()
        local token = login(srv)
        local hdr = jwt.header(token)
        assert.equal(case.alg, hdr.alg)
        assert.equal("a", hdr.kid)
        local r = me(srv, token)
        assert.equal(200, r.status, r.body)
        assert.equal(EMAIL, r.json.email)
      end)

      it("accepts a token signed elsewhere with the right key", function()
        local t = jwt.forge(jwt.claims(user_id), { alg = case.alg, kid = "a" }, key(case.a))
        assert.equal(200, me(srv, t).status)
      end)

      it("refuses a token signed with another key under the known kid", function()
        local t = jwt.forge(jwt.claims(user_id), { alg = case.alg, kid = "a" }, key(case.x))
        local r = me(srv, t)
        assert.equal(401, r.status)
        assert.equal("invalid or expired token", r.json.message)
      end)

      it("refuses HS256 made with the public key as the HMAC secret", function()
        local pub = h.read_all(key(case.a, "pub"))
        for _, hdr in ipairs({ { alg = "HS256", kid = "a" }, { alg = "HS256" } }) do
          assert.equal(401, me(srv, jwt.forge(jwt.claims(user_id), hdr, pub)).status)
        end
      end)

      it("refuses alg none, an unknown kid, no kid and missing claims", function()
        local claims = jwt.claims(user_id)
        for i, t in ipairs({
          jwt.forge(claims, { alg = "none", kid = "a" }),
          jwt.forge(claims, { alg = case.alg, kid = "zz" }, key(case.a)),
          jwt.forge(claims, { alg = case.alg }, key(case.a)),
          jwt.forge(jwt.claims(user_id, { exp = false }), { alg = case.alg, kid = "a" },
            key(case.a)),
          jwt.forge(jwt.claims(user_id, { exp = os.time() - 3600, iat = os.time() - 7200 }),
            { alg = case.alg, kid = "a" }, key(case.a)),
        }) do
          assert.equal(401, me(srv, t).status, "token " .. i)
        end
      end)
    end)

    it(case.alg .. " rotation: old tokens verify while their key is kept", function()
      local s1 = start({ jwt_algorithm = case.alg, jwt_kid = "a",
        jwt_private_key_file = key(case.a), jwt_public_keys = "a=" .. key(case.a, "pub") })
      local old = login(s1)
      s1:stop()
      -- b signs now; a is kept for verification (a Lua list in config.lua)
      local s2 = start({ jwt_algorithm = case.alg, jwt_kid = "b",
        jwt_private_key_file = key(case.b) },
        string.format("auth = { jwt_public_keys = { %q, %q } }", "b=" .. key(case.b, "pub"),
          "a=" .. key(case.a, "pub")))
      assert.equal(200, me(s2, old).status)
      local new = login(s2)
      assert.equal("b", jwt.header(new).kid)
      assert.equal(200, me(s2, new).status)
      s2:stop()
      -- a removed: its tokens are 401, b's still work
      local s3 = start({ jwt_algorithm = case.alg, jwt_kid = "b",
        jwt_private_key_file = key(case.b), jwt_public_keys = "b=" .. key(case.b, "pub") })
      assert.equal(401, me(s3, old).status)
      assert.equal(200, me(s3, new).status)
      s3:stop()
    end)
  end

  it("HS256 rotation: an earlier secret verifies the tokens of its kid", function()
    local NEW = "the-next-secret-0123456789abcdef0123456"
    local s1 = start({ jwt_secret = SECRET, jwt_kid = "k1" })
    local old = login(s1)
    assert.same({ alg = "HS256", kid = "k1", typ = "JWT" }, jwt.header(old))
    s1:stop()
    local s2 = start({ jwt_secret = NEW, jwt_kid = "k2", jwt_previous_secrets = "k1=" .. SECRET })
    assert.equal(200, me(s2, old).status)
    assert.equal(200, me(s2, login(s2)).status)
    -- an RS256 token is refused by an HS256 server whatever its key
    assert.equal(401, me(s2, jwt.forge(jwt.claims(user_id), { alg = "RS256", kid = "k1" },
      key("ra"))).status)
    s2:stop()
    local s3 = start({ jwt_secret = NEW, jwt_kid = "k2" })
    assert.equal(401, me(s3, old).status)
    s3:stop()
  end)

  describe("start-up", function()
    local function rs(changes)
      local s = { jwt_algorithm = "RS256", jwt_kid = "a", jwt_private_key_file = key("ra"),
        jwt_public_keys = "a=" .. key("ra", "pub") }
      for k, v in pairs(changes) do
        s[k] = v ~= false and v or nil
      end
      return s
    end

    for _, case in ipairs({
      { "an unknown algorithm", { jwt_algorithm = "HS512", jwt_secret = SECRET },
        "auth.jwt_algorithm must be HS256, RS256 or ES256" },
      { "a short HS256 secret", { jwt_secret = "short" }, "32 bytes or more" },
      { "a missing private key file", rs({ jwt_private_key_file = keys .. "/nope.pem" }),
        "auth.jwt_private_key_file: cannot read" },
      { "an unreadable private key file", rs({ jwt_private_key_file = keys }),
        "auth.jwt_private_key_file: cannot read" },
      { "no private key file", rs({ jwt_private_key_file = false }),
        "needs auth.jwt_private_key_file, auth.jwt_kid and auth.jwt_public_keys" },
      { "no kid", rs({ jwt_kid = false }), "needs auth.jwt_private_key_file" },
      { "an EC key for RS256", rs({ jwt_private_key_file = key("ea") }),
        "RS256 needs an RSA key" },
      { "a short RSA key", rs({ jwt_public_keys = "a=" .. key("small", "pub") }),
        "2048 bits" },
      { "a P-384 key for ES256", { jwt_algorithm = "ES256", jwt_kid = "a",
        jwt_private_key_file = key("e384"), jwt_public_keys = "a=" .. key("e384", "pub") },
        "ES256 needs an EC key on the P-256 curve" },
      { "a private key among the public keys", rs({ jwt_public_keys = "a=" .. key("ra") }),
        "auth.jwt_public_keys: kid 'a'" },
      { "a missing public key file", rs({ jwt_public_keys = "a=" .. keys .. "/nope.pub" }),
        "auth.jwt_public_keys: cannot read" },
      { "a public key list item without a kid", rs({ jwt_public_keys = key("ra", "pub") }),
        "items are kid=value" },
      { "the signing kid missing from the public keys",
        rs({ jwt_public_keys = "b=" .. key("ra", "pub") }), "no verification key" },
      { "a private key that is not the kid's", rs({ jwt_public_keys = "a=" .. key("rb", "pub") }),
        "does not verify" },
      { "key files with HS256", { jwt_secret = SECRET, jwt_private_key_file = key("ra") },
        "are for RS256 and ES256" },
    }) do
      it("fails on " .. case[1], function()
        local out = refuses(case[2])
        assert.truthy(out:find("exit=1", 1, true), out)
        assert.truthy(out:find(case[3], 1, true), out)
      end)
    end
  end)
end)

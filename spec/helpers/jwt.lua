-- Helpers for token specs: JWTs made outside the runtime (openssl signs), so
-- a spec can forge what an attacker would send, and key files made with
-- openssl.
local h = require "helpers"
local cjson = require "cjson"

local M = {}

local q = h.sh_quote

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

-- base64url without padding of any byte string.
function M.b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for j = 1, chars do
      local v = (n >> (6 * (4 - j))) & 63
      out[#out + 1] = B64:sub(v + 1, v + 1)
    end
  end
  return table.concat(out)
end

function M.b64url_decode(s)
  local out, bits, n = {}, 0, 0
  for ch in s:gmatch(".") do
    local v = B64:find(ch, 1, true)
    assert(v, "not base64url: " .. ch)
    n = (n << 6) | (v - 1)
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = string.char((n >> bits) & 255)
    end
  end
  return table.concat(out)
end

-- The decoded header of a token.
function M.header(token)
  return cjson.decode(M.b64url_decode(token:match("^([^.]+)")))
end

-- Runs openssl over data (a file, so any byte goes through); returns its
-- raw output.
local function openssl(args, data)
  local f = os.tmpname()
  h.write_all(f, data)
  local p = assert(io.popen("openssl " .. args .. " " .. q(f) .. " 2>/dev/null", "r"))
  local out = p:read("a")
  p:close()
  os.remove(f)
  return out
end

-- An ECDSA signature from openssl (DER: SEQUENCE of two INTEGERs) as JOSE
-- wants it: r and s as 32 bytes each.
local function der_to_jose(der)
  assert(der:byte(1) == 0x30, "not a DER signature")
  local i = der:byte(2) < 0x80 and 3 or 4
  local parts = {}
  for k = 1, 2 do
    assert(der:byte(i) == 0x02, "not a DER integer")
    local len = der:byte(i + 1)
    local v = der:sub(i + 2, i + 1 + len):gsub("^%z+", "")
    parts[k] = string.rep("\0", 32 - #v) .. v
    i = i + 2 + len
  end
  return parts[1] .. parts[2]
end

-- A token over claims with header fields hdr (alg required), signed:
-- HS*: key is the HMAC secret (any bytes, a PEM public key too); RS256/ES256:
-- key is the path of a PEM private key; none: no signature.
function M.forge(claims, hdr, key)
  local header = { typ = "JWT" }
  for k, v in pairs(hdr) do
    header[k] = v
  end
  local data = M.b64url(cjson.encode(header)) .. "." .. M.b64url(cjson.encode(claims))
  local alg = header.alg
  local sig = ""
  if alg == "HS256" or alg == "HS512" then
    local hexkey = key:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    sig = openssl("dgst -" .. (alg == "HS256" and "sha256" or "sha512")
      .. " -binary -mac HMAC -macopt hexkey:" .. hexkey, data)
  elseif alg == "RS256" then
    sig = openssl("dgst -sha256 -sign " .. q(key), data)
  elseif alg == "ES256" then
    sig = der_to_jose(openssl("dgst -sha256 -sign " .. q(key), data))
  end
  return data .. "." .. M.b64url(sig)
end

-- Claims the runtime accepts for platform user sub (changes: fields to set;
-- false removes one).
function M.claims(sub, changes)
  local now = os.time()
  local c = { iss = "runtime", aud = "runtime-api", sub = tostring(sub), scope = "core",
    jti = "forged-" .. math.random(1, 1 << 30), iat = now, exp = now + 300 }
  for k, v in pairs(changes or {}) do
    c[k] = v ~= false and v or nil
  end
  return c
end

-- Makes key files in dir with openssl: for each name, kind "rsa" (2048 bits),
-- "rsa1024", "ec" (P-256) or "ec384": dir/name.pem (private) and
-- dir/name.pub (public).
function M.make_keys(dir, keys)
  for name, kind in pairs(keys) do
    local priv, pub = dir .. "/" .. name .. ".pem", dir .. "/" .. name .. ".pub"
    local gen = ({
      rsa = "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048",
      rsa1024 = "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024",
      ec = "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256",
      ec384 = "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384",
    })[kind]
    local out, ok = h.run("mkdir -p " .. q(dir) .. " && openssl " .. gen .. " -out " .. q(priv)
      .. " 2>&1 && openssl pkey -in " .. q(priv) .. " -pubout -out " .. q(pub) .. " 2>&1")
    assert(ok, "openssl: " .. out)
  end
end

return M

-- prelude: the Lua half of the Lua host (luastate.c, scripts.c, dispatch.c,
-- steps.c), compiled into the binary.
--
-- Loaded once into every state with the internals it needs as
-- arguments. It validates route tables (`collect`) and runs one request
-- (`dispatch`): it calls the handler, turns what it returns into status,
-- body and headers, and reports which channel failed, so the C side decides
-- commit or rollback and shapes the error body.

local traceback, encode, decode, rt = ...

local HttpError = {}
local NULL = rt.null

-- Raises an error that becomes a 4xx response with the one error shape;
-- fields (optional) maps field names to what is wrong with them.
local function http_error(status, code, message, fields)
  if math.type(status) ~= "integer" or status < 400 or status > 499 then
    error("rt.error: status must be a 4xx integer", 2)
  end
  error(setmetatable({ status = status, code = code, message = message,
    fields = fields }, HttpError), 0)
end
rt.error = http_error

-- Raises a 422 validation_failed naming every field of fields (field ->
-- problem), the message being the first field by name; nothing when empty.
local function invalid(fields)
  local first
  for k in pairs(fields) do
    if not first or k < first then
      first = k
    end
  end
  if first then
    http_error(422, "validation_failed", first .. " " .. fields[first], fields)
  end
end
rt.invalid = invalid

-- ---- body validation: a small subset of JSON Schema --------------------------
-- type (object, array, string, integer, number, boolean), properties,
-- required, additionalProperties = false, items, minItems, maxItems,
-- minLength, maxLength (characters), minimum, maximum, enum, nullable,
-- format (email, code). Integral numbers become Lua integers.

local formats = {
  email = function(v)
    return #v <= 254 and v:find("^[^%s@]+@[^%s@]+%.[^%s@]+$") ~= nil
  end,
  code = function(v)
    return v:find("^[a-z][a-z0-9_]+$") ~= nil and #v <= 40
  end,
}

local check

local function check_object(schema, v, path, fields)
  if type(v) ~= "table" or v == NULL or (next(v) == 1) then
    fields[path ~= "" and path or "body"] = "must be an object"
    return v
  end
  local props = schema.properties or {}
  local prefix = path ~= "" and path .. "." or ""
  for _, name in ipairs(schema.required or {}) do
    if v[name] == nil then
      fields[prefix .. name] = "is required"
    end
  end
  for k, item in pairs(v) do
    if type(k) ~= "string" then
      fields[path ~= "" and path or "body"] = "must be an object"
    elseif props[k] then
      v[k] = check(props[k], item, prefix .. k, fields)
    elseif schema.additionalProperties == false then
      fields[prefix .. k] = "is not allowed"
    end
  end
  return v
end

check = function(schema, v, path, fields)
  if v == NULL then
    if not schema.nullable then
      fields[path] = "must not be null"
    end
    return v
  end
  local t = schema.type
  if t == "object" then
    return check_object(schema, v, path, fields)
  elseif t == "array" then
    if type(v) ~= "table" or (next(v) ~= nil and v[1] == nil) then
      fields[path] = "must be an array"
      return v
    end
    if schema.minItems and #v < schema.minItems then
      fields[path] = "must have at least " .. schema.minItems .. " items"
    elseif schema.maxItems and #v > schema.maxItems then
      fields[path] = "must have at most " .. schema.maxItems .. " items"
    end
    if schema.items then
      for i = 1, #v do
        v[i] = check(schema.items, v[i], path .. "[" .. i .. "]", fields)
      end
    end
    return v
  elseif t == "string" then
    if type(v) ~= "string" then
      fields[path] = "must be a string"
      return v
    end
    local n = utf8.len(v)
    if not n then
      fields[path] = "must be valid UTF-8"
    elseif schema.minLength and n < schema.minLength then
      fields[path] = schema.minLength == 1 and "must not be empty"
        or "must be at least " .. schema.minLength .. " characters"
    elseif schema.maxLength and n > schema.maxLength then
      fields[path] = "must be at most " .. schema.maxLength .. " characters"
    elseif schema.format and formats[schema.format] and not formats[schema.format](v) then
      fields[path] = "must be a valid " .. schema.format
    end
  elseif t == "integer" or t == "number" then
    if type(v) ~= "number" then
      fields[path] = "must be a" .. (t == "integer" and "n integer" or " number")
      return v
    end
    if t == "integer" then
      local i = math.tointeger(v)
      if not i then
        fields[path] = "must be an integer"
        return v
      end
      v = i
    end
    if schema.minimum and v < schema.minimum then
      fields[path] = "must be at least " .. schema.minimum
    elseif schema.maximum and v > schema.maximum then
      fields[path] = "must be at most " .. schema.maximum
    end
  elseif t == "boolean" then
    if type(v) ~= "boolean" then
      fields[path] = "must be true or false"
    end
  end
  if schema.enum and fields[path] == nil then
    local found = false
    for _, e in ipairs(schema.enum) do
      found = found or e == v
    end
    if not found then
      fields[path] = "must be one of " .. table.concat(schema.enum, ", ")
    end
  end
  return v
end

-- Checks value against schema. Returns the value (integral numbers made
-- integers), or raises a 422 naming every bad field.
local function validate(schema, value)
  local fields = {}
  value = check(schema, value, "", fields)
  if fields[""] then
    fields.body, fields[""] = fields[""], nil
  end
  invalid(fields)
  return value
end
rt.validate = validate

local function on_error(e)
  if getmetatable(e) == HttpError then
    return e
  end
  return traceback(tostring(e), 2)
end

local function is_json_type(ctype)
  local base = ctype:match("^%s*([^;%s]+)")
  if not base then
    return false
  end
  base = base:lower()
  return base == "application/json" or base:find("^application/[%w.-]+%+json$")
end

local function body_json(req)
  local ctype = req.headers["content-type"]
  if not ctype or not is_json_type(ctype) then
    http_error(415, "unsupported_media_type",
      "expected a JSON body with Content-Type: application/json")
  end
  if req.body == nil or req.body == "" then
    http_error(400, "invalid_json", "the request body is empty; expected JSON")
  end
  local ok, value = pcall(decode, req.body)
  if not ok then
    http_error(400, "invalid_json",
      "the request body is not valid JSON: " .. tostring(value))
  end
  return value
end

local function is_form_type(ctype)
  return ctype and ctype:lower():find("^%s*application/x%-www%-form%-urlencoded") ~= nil
end

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

-- The body as a table: JSON, or form fields (OAuth2 password flow clients).
local function body_fields(req)
  if is_form_type(req.headers["content-type"]) then
    local t = {}
    for pair in (req.body or ""):gmatch("[^&]+") do
      local k, v = pair:match("^([^=]*)=?(.*)$")
      k, v = url_decode(k), url_decode(v)
      if k:find("\0", 1, true) or v:find("\0", 1, true) then
        -- PostgreSQL text cannot hold NUL: a client error, as in JSON
        http_error(400, "invalid_form", "%00 (NUL) is not supported in form fields")
      end
      t[k] = v
    end
    return t
  end
  return body_json(req)
end

local header_name = "^[%w!#$%%&'*+.^_`|~-]+$"

-- Checks and flattens a handler's response table.
-- Returns status, body, content type, {name, value, ...} or nil, message.
local function response_of(res)
  if type(res) ~= "table" then
    return nil, "handler returned " .. type(res) .. ", expected a response table"
  end
  local status = res.status or 200
  if math.type(status) ~= "integer" or status < 200 or status > 599 then
    return nil, "response status must be an integer from 200 to 599"
  end
  local body, ctype = "", nil
  if res.json ~= nil then
    local ok, s = pcall(encode, res.json)
    if not ok then
      return nil, "cannot encode the response as JSON: " .. tostring(s)
    end
    body, ctype = s, "application/json"
  elseif res.body ~= nil then
    if type(res.body) ~= "string" then
      return nil, "response body must be a string (use json = ... for tables)"
    end
    body, ctype = res.body, "text/plain; charset=utf-8"
  end
  local flat = {}
  if res.headers ~= nil then
    if type(res.headers) ~= "table" then
      return nil, "response headers must be a table"
    end
    for name, value in pairs(res.headers) do
      if type(name) ~= "string" or not name:find(header_name) then
        return nil, "bad response header name " .. tostring(name)
      end
      if type(value) == "number" then
        value = tostring(value)
      end
      if type(value) ~= "string" or value:find("[%c]") then
        return nil, "bad value for response header " .. name
      end
      if name:lower() == "content-type" then
        ctype = value
      else
        flat[#flat + 1] = name
        flat[#flat + 1] = value
      end
    end
  end
  return status, body, ctype, flat
end

-- Runs one request. Returns a kind and its values:
--   "ok", status, body, content_type, headers   (commit)
--   "http_error", status, code, message          (rollback)
--   "error", log_text                            (rollback; a bug: 500)
--   "fail", log_text                             (rollback; nil, err: 500)
--   "http_error", status, body                   (rollback)
local function dispatch(handler, req)
  local parsed
  req.json = function()
    if parsed == nil then
      parsed = body_json(req)
    end
    return parsed
  end
  req.fields = function()
    if parsed == nil then
      parsed = body_fields(req)
    end
    return parsed
  end
  local ok, res, err = xpcall(handler, on_error, req)
  if not ok then
    if getmetatable(res) == HttpError then
      local body = encode({ error = res.code or "bad_request",
        message = res.message or res.code or "bad request", fields = res.fields,
        request_id = req.id })
      return "http_error", res.status, body
    end
    return "error", tostring(res)
  end
  if res == nil then
    if err == nil then
      return "fail", "handler returned nothing"
    end
    return "fail", "handler failed: " .. tostring(err)
  end
  local status, body, ctype, headers = response_of(res)
  if not status then
    return "error", body
  end
  return "ok", status, body, ctype, headers
end

local methods = {
  GET = true, HEAD = true, POST = true, PUT = true, PATCH = true,
  DELETE = true, OPTIONS = true,
}
local scopes = { public = true, core = true, tenant = true, any = true }
local fields = {
  handler = "function", scope = "string", permission = "string",
  summary = "string", description = "string", readonly = "boolean",
  offload = "boolean", body = "table", tags = "table",
  unknown_tenant = "boolean",
}
-- offload: false, true (the offload lane: password hashing) or "admin" (the
-- admin lane: provisioning, migrations, seeds, purges).
local offload_values = { [false] = true, [true] = true, admin = true }

-- A handler that first validates the body against schema (a form body
-- too, for routes that accept one).
local function validating(schema, handler)
  return function(req)
    validate(schema, req.fields()) -- fixes the parsed table in place
    return handler(req)
  end
end
local reserved = { ["/healthz"] = true, ["/readyz"] = true }

local function sorted_keys(t, what, file)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error(file .. ": " .. what .. " keys must be strings, got " .. type(k), 0)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

-- Validates the table a route file returned and flattens it, in a fixed
-- order, into a list of { method, pattern, handler, scope, permission,
-- summary }. Errors name the file and the route.
local function collect(file, routes)
  if type(routes) ~= "table" then
    error(file .. ": must return a table of routes, got " .. type(routes), 0)
  end
  local out = {}
  for _, pattern in ipairs(sorted_keys(routes, "route", file)) do
    if reserved[pattern] then
      error(file .. ": route " .. pattern .. " is reserved by the runtime", 0)
    end
    local verbs = routes[pattern]
    if type(verbs) ~= "table" then
      error(file .. ": route " .. pattern .. " must map methods to handlers", 0)
    end
    for _, method in ipairs(sorted_keys(verbs, "method", file)) do
      local where = file .. ": route " .. method .. " " .. pattern
      if not methods[method] then
        error(where .. ": unknown method (expected GET, HEAD, POST, PUT, "
          .. "PATCH, DELETE or OPTIONS)", 0)
      end
      local spec = verbs[method]
      if type(spec) == "function" then
        spec = { handler = spec }
      elseif type(spec) ~= "table" then
        error(where .. ": expected a handler function or a route table", 0)
      end
      for k, v in pairs(spec) do
        if not fields[k] then
          error(where .. ": unknown field '" .. tostring(k) .. "'", 0)
        end
        if k == "offload" then
          if not offload_values[v] then
            error(where .. ": field 'offload' must be true, false or \"admin\"", 0)
          end
        elseif type(v) ~= fields[k] then
          error(where .. ": field '" .. k .. "' must be a " .. fields[k], 0)
        end
      end
      if not spec.handler then
        error(where .. ": missing handler function", 0)
      end
      local scope = spec.scope or "tenant"
      if not scopes[scope] then
        error(where .. ": scope must be public, core, tenant or any", 0)
      end
      -- GET and HEAD are safe methods: their transaction is READ ONLY unless
      -- the route says otherwise.
      local readonly = spec.readonly
      if readonly == nil then
        readonly = method == "GET" or method == "HEAD"
      end
      if scope == "public" and spec.permission then
        error(where .. ": a public route cannot require a permission", 0)
      end
      if spec.unknown_tenant and scope ~= "public" then
        error(where .. ": only a public route takes unknown_tenant", 0)
      end
      if spec.body and spec.body.type ~= "object" then
        error(where .. ": body must be a schema with type = \"object\"", 0)
      end
      out[#out + 1] = {
        method = method, pattern = pattern,
        handler = spec.body and validating(spec.body, spec.handler) or spec.handler,
        scope = scope, permission = spec.permission, summary = spec.summary,
        description = spec.description, readonly = readonly,
        offload = spec.offload or false, body = spec.body, tags = spec.tags,
        unknown_tenant = spec.unknown_tenant or false,
      }
    end
  end
  return out
end

local step_fields = {
  migration = { up = true, down = true, transaction = true },
  seed = { run = true },
}

-- Validates the table a step file returned: a migration (up, down,
-- transaction) or a seed (run). Returns has_down, transactional; errors name
-- the file.
local function step_check(file, step, kind)
  local allowed = step_fields[kind]
  local main = kind == "seed" and "run" or "up"
  if type(step) ~= "table" then
    error(file .. ": must return a table with " .. main .. ", got " .. type(step), 0)
  end
  for k in pairs(step) do
    if not allowed[k] then
      local names = kind == "seed" and "run" or "up, down, transaction"
      error(file .. ": unknown field '" .. tostring(k) .. "' (expected " .. names
        .. ")", 0)
    end
  end
  if type(step[main]) ~= "function" then
    error(file .. ": " .. main .. " must be a function", 0)
  end
  if step.down ~= nil and step.down ~= false and type(step.down) ~= "function" then
    error(file .. ": down must be a function or false", 0)
  end
  if step.transaction ~= nil and type(step.transaction) ~= "boolean" then
    error(file .. ": transaction must be a boolean", 0)
  end
  return type(step.down) == "function", step.transaction ~= false
end

-- Validates the table an events file returned, { ["name"] = handler or
-- { handler, ... } }, and flattens it into { name = { handler, ... } }.
-- Names are dotted lower-case words ("organization.created").
local function events_collect(file, handlers)
  if type(handlers) ~= "table" then
    error(file .. ": must return a table of event handlers, got " .. type(handlers), 0)
  end
  local out = {}
  for _, name in ipairs(sorted_keys(handlers, "event", file)) do
    if not name:match("^[a-z][a-z0-9_]*%.?[a-z0-9_.]*$") or name:match("%.%.")
      or name:match("%.$") then
      error(file .. ": event name '" .. name .. "' must be dotted lower-case words", 0)
    end
    local h = handlers[name]
    local list = type(h) == "function" and { h } or h
    if type(list) ~= "table" or #list == 0 then
      error(file .. ": event " .. name .. " must map to a function or a list of them", 0)
    end
    for i, fn in ipairs(list) do
      if type(fn) ~= "function" then
        error(file .. ": event " .. name .. ": handler " .. i .. " is not a function", 0)
      end
    end
    out[name] = list
  end
  return out
end

return { dispatch = dispatch, collect = collect, step_check = step_check,
  events_collect = events_collect }

-- Platform administration of tenants (seeds 002 and 004): the directory,
-- provisioning, per-tenant migrations and seeds, and fleet migration runs.
-- Every route is for platform superusers and API keys (scope core,
-- permission platform_admin).
--
-- Provisioning is atomic in this runtime: storage, migrations and seeds are
-- made together or not at all (rt.tenant.create). So seed 004's
-- provision_schema = false / run_migrations = false (a directory row without
-- storage, a half-made tenant) is refused with 422; provision-schema
-- re-provisions a failed tenant, or any tenant with force_recreate.
--
-- A fleet run (POST /api/v1/tenants/migrations) runs synchronously on the
-- admin lane: the call returns when the run has ended, and the run and its
-- per-target results are then recorded in core.migration_runs and
-- core.migration_run_targets for GET /api/v1/tenants/migrations/:run_id.
local db = require "rt.db"
local json = require "rt.json"
local auth = require "rt.auth"
local tenant = require "rt.tenant"
local rt = require "rt"

local NULL = rt.null
local PERMISSION = "platform_admin"
local TAGS = { "tenants" }

local COLUMNS = [[
  id, code, name, isolation, server, schema_name, database_name, domain,
  subdomain, status, status_reason, settings, schema_version, migration_status,
  last_migration_error, migrated_at, created_at, updated_at, deleted_at]]

-- ---- helpers -----------------------------------------------------------------

-- The directory row as the API shows it: our names plus the seed 002/004
-- names (tenant_code, tenant_name, is_active, schema_provisioned,
-- migrations_applied).
local function present(row)
  row.tenant_code = row.code
  row.tenant_name = row.name
  row.is_active = row.status == "active"
  row.schema_provisioned = row.status == "active" or row.status == "suspended"
  row.migrations_applied = row.schema_provisioned and row.migration_status == "ok"
  return row
end

local function not_found(what)
  rt.error(404, "not_found", what or "no such tenant")
end

-- The tenant named by a numeric id or a code, or a 404.
local function find(ident)
  local sql = "SELECT " .. COLUMNS .. " FROM core.tenants WHERE "
  local row, err
  if math.type(ident) == "integer" or (type(ident) == "string" and ident:find("^%d+$")) then
    local s = tostring(ident)
    if #s > 18 then
      not_found()
    end
    row, err = db.query_one(sql .. "id = $1", s)
  elseif type(ident) == "string" and ident:find("^[a-z][a-z0-9_]+$") and #ident <= 40 then
    row, err = db.query_one(sql .. "code = $1", ident)
  else
    not_found()
  end
  if err then
    error("could not read the tenant directory: " .. err)
  end
  if not row then
    not_found()
  end
  return row
end

-- Maps a failed rt.tenant call: conflict 409, not_found 404, else 500.
local function failed(msg, kind, what)
  if kind == "conflict" then
    rt.error(409, "conflict", msg)
  elseif kind == "not_found" then
    not_found(msg)
  end
  return nil, "could not " .. what .. ": " .. tostring(msg)
end

local function reread(id)
  local row, err = db.query_one("SELECT " .. COLUMNS .. " FROM core.tenants WHERE id = $1", id)
  if err then
    return nil, err
  end
  return present(row)
end

-- A tenant code from a display name or host name: lower-case, [a-z0-9_],
-- starting with a letter, 2 to 40 characters; nil when there is nothing to
-- build on.
local code_from = require("lib.codes").from_name

-- The same check as the directory's (lower-case host names); raises 422.
local function host(fields, name, v)
  if v == nil or v == NULL then
    return v
  end
  v = v:lower()
  if #v > 253 or not v:find("^[a-z0-9][a-z0-9.-]*$") or v:find("%.%.")
    or v:find("[.-]$") then
    fields[name] = "must be a host name (letters, digits, '-' and '.')"
  end
  return v
end

local raise_fields = rt.invalid

-- An id (integer or digit string) or a code, from a body field.
local function ident_of(body, name)
  local v = body[name]
  if type(v) == "number" then
    v = math.tointeger(v) -- JSON numbers arrive as floats
  end
  if math.type(v) == "integer" or (type(v) == "string" and v ~= "") then
    return v
  end
  rt.error(422, "validation_failed", name .. " must be a tenant id or code",
    { [name] = "must be a tenant id or code" })
end

local function paging(req)
  local skip = tonumber(req.query.skip or "0")
  local limit = tonumber(req.query.limit or "100")
  local fields = {}
  if not skip or math.type(skip) ~= "integer" or skip < 0 then
    fields.skip = "must be an integer of 0 or more"
  end
  if not limit or math.type(limit) ~= "integer" or limit < 1 or limit > 1000 then
    fields.limit = "must be an integer from 1 to 1000"
  end
  raise_fields(fields)
  return skip, limit
end

-- The owner recorded for a tenant (core.tenant_members), as rt.tenant.create
-- takes it, and the core user id; nil when it has none.
local function recorded_owner(tenant_id)
  local u, err = db.query_one([[
    SELECT u.id, u.email, u.full_name, u.password_hash
    FROM core.tenant_members m JOIN core.users u ON u.id = m.user_id
    WHERE m.tenant_id = $1 AND m.role = 'owner' AND u.deleted_at IS NULL
    ORDER BY m.created_at LIMIT 1]], tenant_id)
  if err then
    error("could not read the tenant's owner: " .. err)
  end
  if not u then
    return nil
  end
  return { email = u.email, username = u.email, full_name = u.full_name,
    password_hash = u.password_hash }, u.id
end

-- Only tenants with storage can migrate or seed.
local function usable(row)
  if row.status == "deleted" or row.status == "failed" or row.status == "provisioning" then
    rt.error(409, "conflict", "tenant " .. row.code .. " is " .. row.status
      .. (row.status == "deleted" and "" or "; re-provision it (provision-schema)"))
  end
end

local function per_tenant_migrations(row)
  usable(row)
  if row.isolation == "shared" then
    rt.error(422, "shared_tenant", "tenant " .. row.code .. " is in shared mode: its "
      .. "tables are migrated with the shared target, by a fleet run "
      .. "(POST /api/v1/tenants/migrations)")
  end
end

-- rt.tenant.migrate answers report, or nil, message, report, status when
-- the run failed: returns the report and the run's exit status (0 ok, 1
-- failed, 2 refused).
local function migrate(spec)
  local report, _, failed_report, status = tenant.migrate(spec)
  if report then
    return report, 0
  end
  return failed_report, status
end

-- The engine's report arrives without array marks, so an empty list
-- would encode as {}: marks the report's lists (in place) and returns it.
local LISTS = { targets = true, failures = true, applied = true, statements = true,
  drift = true, pending = true, tenants = true }
local function mark_lists(v)
  for k, x in pairs(v) do
    if type(x) == "table" then
      mark_lists(x)
      if LISTS[k] then
        json.array(x)
      end
    end
  end
  return v
end

-- The answer to a per-tenant migration: 200 with the engine's report, or 409
-- (migration_failed) with it when the engine failed.
local function migration_answer(row, extra, report, status)
  local out = { tenant_id = row.id, code = row.code, ok = status == 0,
    report = mark_lists(report) }
  for k, v in pairs(extra) do
    out[k] = v
  end
  if status ~= 0 then
    out.error = "migration_failed"
    out.message = report.errors or "the migration failed; see report"
    return { status = 409, json = out }
  end
  return { json = out }
end

local function provision_answer(row, created, message)
  return {
    status = created and 201 or 200,
    headers = created and { Location = "/api/v1/tenants/" .. row.id } or nil,
    json = {
      tenant = row,
      schema_created = true,
      migrations_applied = true,
      migration_status = { schema_provisioned = row.schema_provisioned,
        migrations_applied = row.migrations_applied,
        current_revision = row.schema_version },
      message = message,
    },
  }
end

local function set_status(req, status, allowed)
  local row = find(req.params.id)
  if not allowed[row.status] then
    rt.error(409, "conflict", "tenant " .. row.code .. " is " .. row.status
      .. ", it cannot become " .. status)
  end
  local ok, msg, kind = tenant.set_status(row.code, status)
  if not ok then
    return failed(msg, kind, "change the status of " .. row.code)
  end
  local now, err = reread(row.id)
  if not now then return nil, err end
  return { json = now }
end

-- ---- schemas -----------------------------------------------------------------

local host_schema = { type = "string", minLength = 1, maxLength = 253, nullable = true }

local create_schema = {
  type = "object", additionalProperties = false,
  properties = {
    code = { type = "string", minLength = 2, maxLength = 40 },
    tenant_code = { type = "string", minLength = 2, maxLength = 40 },
    name = { type = "string", minLength = 1, maxLength = 200 },
    tenant_name = { type = "string", minLength = 1, maxLength = 200 },
    domain = host_schema,
    subdomain = host_schema,
    isolation = { type = "string", enum = { "shared", "schema", "database" } },
    server = { type = "string", minLength = 1, maxLength = 63 },
    admin_email = { type = "string", format = "email" },
    email = { type = "string", format = "email" },
    admin_password = { type = "string", minLength = 1, maxLength = 256 },
    tenant_type = { type = "string", maxLength = 100 },
    settings = { type = "object" },
    provision_schema = { type = "boolean" },
    run_migrations = { type = "boolean" },
  },
}

local patch_schema = {
  type = "object", additionalProperties = false,
  properties = {
    name = { type = "string", minLength = 1, maxLength = 200 },
    tenant_name = { type = "string", minLength = 1, maxLength = 200 },
    domain = host_schema,
    subdomain = host_schema,
    settings = { type = "object" },
  },
}

-- tenant_id and target_revision take an integer or a string: they are
-- checked by hand (an untyped property accepts any value).
local provision_schema = {
  type = "object", required = { "tenant_id" }, additionalProperties = false,
  properties = {
    tenant_id = { description = "tenant id (integer or digit string) or code" },
    force_recreate = { type = "boolean" },
  },
}

local migrations_schema = {
  type = "object", required = { "tenant_id" }, additionalProperties = false,
  properties = {
    tenant_id = { description = "tenant id (integer or digit string) or code" },
    target_revision = { description = "\"head\" or a version number" },
    dry_run = { type = "boolean" },
    force = { type = "boolean" },
  },
}

-- ---- handlers ----------------------------------------------------------------

local function create(req)
  local body = req.json()
  local fields = {}
  for _, flag in ipairs({ "provision_schema", "run_migrations" }) do
    if body[flag] == false then
      fields[flag] = "must be true: this runtime provisions a tenant atomically "
        .. "(storage, migrations and seeds together)"
    end
  end
  if next(fields) then
    rt.error(422, "unsupported", "a tenant without storage or migrations cannot be "
      .. "made: this runtime provisions atomically (storage, migrations and seeds "
      .. "together or not at all); leave provision_schema and run_migrations true", fields)
  end
  local name = body.name or body.tenant_name
  local domain = host(fields, "domain", body.domain)
  local subdomain = host(fields, "subdomain", body.subdomain)
  local code = body.code or body.tenant_code
  if code then
    code = code:lower()
    if not code:find("^[a-z][a-z0-9_]+$") or #code > 40 then
      fields[body.code and "code" or "tenant_code"] =
        "must be 2 to 40 characters: a letter, then letters, digits or _"
    end
  else
    code = code_from(name) or code_from(domain ~= NULL and domain or nil)
    if not code then
      fields.code = "is required (no code can be derived from name or domain)"
    end
  end
  raise_fields(fields)

  -- The tenant's first user: an existing platform user with that email
  -- keeps their credentials (and becomes the recorded owner); otherwise
  -- admin_password sets one. Without either no tenant user is made.
  local email = body.admin_email or body.email
  local owner, owner_id, note
  if email then
    local u, err = db.query_one([[
      SELECT id, email, full_name, password_hash FROM core.users
      WHERE email = lower($1) AND deleted_at IS NULL AND status = 'active']], email)
    if err then return nil, err end
    if u then
      owner = { email = u.email, username = u.email, full_name = u.full_name,
        password_hash = u.password_hash }
      owner_id = u.id
      note = "; " .. u.email .. " (a platform user) is its owner and logs in with "
        .. "their platform password"
    elseif body.admin_password then
      local problem = auth.password_problem(body.admin_password)
      if problem then
        rt.error(422, "validation_failed", "admin_password " .. problem,
          { admin_password = problem })
      end
      owner = { email = email:lower(), username = email:lower(), full_name = "",
        password_hash = auth.hash_password(body.admin_password) }
      note = "; its admin user " .. email:lower() .. " was created"
    else
      note = "; no tenant user was created for " .. email:lower()
        .. " (not a platform user, and no admin_password given)"
    end
  elseif body.admin_password then
    rt.error(422, "validation_failed", "admin_password needs admin_email",
      { admin_email = "is required with admin_password" })
  end

  local id, msg, kind = tenant.create {
    code = code, name = name or code, isolation = body.isolation, server = body.server,
    domain = domain ~= NULL and domain or nil,
    subdomain = subdomain ~= NULL and subdomain or nil, owner = owner,
  }
  if not id then
    if kind == "conflict" then
      rt.error(409, "conflict", msg:find("already exists") and ("tenant code '" .. code
        .. "' is already taken") or "code, domain or subdomain is already taken")
    end
    if msg:find("unknown server", 1, true) then
      rt.error(422, "validation_failed", "server is not a configured server",
        { server = "is not a configured server" })
    end
    return nil, "could not create tenant " .. code .. ": " .. msg
  end

  local settings = body.settings or {}
  if body.tenant_type then
    settings.tenant_type = body.tenant_type
  end
  if email then
    settings.admin_email = email:lower()
  end
  local problem
  if next(settings) then
    local ok, umsg = tenant.update(code, { settings = json.encode(settings) })
    problem = not ok and umsg
  end
  if not problem and owner_id then
    local _, merr = db.exec([[
      INSERT INTO core.tenant_members (tenant_id, user_id, role)
      VALUES ($1, $2, 'owner')]], id, owner_id)
    problem = merr
  end
  if problem then
    -- No tenant half made: undo the provisioning.
    local ok, perr = tenant.purge(code)
    return nil, "could not finish tenant " .. code .. ": " .. problem
      .. (ok and "" or "; and purging it failed: " .. tostring(perr))
  end
  local row, err = reread(id)
  if not row then return nil, err end
  return provision_answer(row, true,
    "Tenant created successfully, schema provisioned, migrations applied" .. (note or ""))
end

local function list(req)
  local skip, limit = paging(req)
  local status = req.query.status
  if status and not ({ provisioning = 1, active = 1, suspended = 1, failed = 1,
      deleted = 1 })[status] then
    rt.error(422, "validation_failed", "status is not a tenant status",
      { status = "must be provisioning, active, suspended, failed or deleted" })
  end
  local where, params = "status <> 'deleted'", {}
  if status then
    where, params = "status = $1", { status }
  elseif req.query.include_deleted == "true" then
    where = "true"
  end
  local n = #params
  local args = { table.unpack(params) }
  args[n + 1], args[n + 2] = skip, limit
  local rows, err = db.query("SELECT " .. COLUMNS .. " FROM core.tenants WHERE "
    .. where .. " ORDER BY id OFFSET $" .. n + 1 .. " LIMIT $" .. n + 2,
    table.unpack(args, 1, n + 2))
  if err then return nil, err end
  local total, terr = db.query_one("SELECT count(*) AS n FROM core.tenants WHERE "
    .. where, table.unpack(params))
  if terr then return nil, terr end
  for _, row in ipairs(rows) do
    present(row)
  end
  return { json = rows, headers = { ["X-Total-Count"] = tostring(total.n) } }
end

local function patch(req)
  local row = find(req.params.id)
  local body = req.json()
  local fields = {}
  local change = {
    name = body.name or body.tenant_name,
    domain = host(fields, "domain", body.domain),
    subdomain = host(fields, "subdomain", body.subdomain),
  }
  raise_fields(fields)
  if body.settings then
    -- A merge patch (RFC 7386, top level): null removes a key.
    local settings = row.settings ~= NULL and row.settings or {}
    for k, v in pairs(body.settings) do
      if v == NULL then
        settings[k] = nil
      else
        settings[k] = v
      end
    end
    change.settings = json.encode(settings)
  end
  local ok, msg, kind = tenant.update(row.code, change)
  if not ok then
    return failed(msg, kind, "update tenant " .. row.code)
  end
  local now, err = reread(row.id)
  if not now then return nil, err end
  return { json = now }
end

local function delete(req)
  local row = find(req.params.id)
  if req.query.purge == "true" then
    local ok, msg, kind = tenant.purge(row.code)
    if not ok then
      return failed(msg, kind, "purge tenant " .. row.code)
    end
    -- rt.tenant ended the tenant's sessions in the database; here at once
    local done, aerr = auth.revoke_tenant(row.id)
    if not done then return nil, aerr end
    return { json = { id = row.id, code = row.code, purged = true,
      message = "tenant " .. row.code .. " purged: storage and directory row dropped" } }
  end
  local ok, msg, kind = tenant.set_status(row.code, "deleted")
  if not ok then
    return failed(msg, kind, "delete tenant " .. row.code)
  end
  local done, aerr = auth.revoke_tenant(row.id)
  if not done then return nil, aerr end
  local now, err = reread(row.id)
  if not now then return nil, err end
  return { json = now }
end

local function provision(req)
  local body = req.json()
  local row = find(ident_of(body, "tenant_id"))
  local force = body.force_recreate == true
  if row.status == "deleted" then
    rt.error(409, "conflict", "tenant " .. row.code .. " is deleted: activate it, or "
      .. "purge it and create it again")
  end
  if not force and row.status ~= "failed" then
    rt.error(409, "conflict", "tenant " .. row.code .. " is already provisioned ("
      .. row.status .. "); force_recreate: true drops its storage and all its data and "
      .. "provisions it again")
  end
  local owner = recorded_owner(row.id)
  if force then
    -- The old storage's tokens name users who will be gone (ids restart).
    -- rt.tenant.create ends them in the database too, before it drops the
    -- storage and again before the new storage goes live; this makes it
    -- hold here at once.
    local done, aerr = auth.revoke_tenant(row.id)
    if not done then return nil, aerr end
  end
  local id, msg, kind = tenant.create {
    code = row.code, name = row.name, isolation = row.isolation, server = row.server,
    domain = row.domain ~= NULL and row.domain or nil,
    subdomain = row.subdomain ~= NULL and row.subdomain or nil,
    force = force, owner = owner,
  }
  if not id then
    return failed(msg, kind, "provision tenant " .. row.code)
  end
  if row.status == "suspended" then
    local ok, smsg, skind = tenant.set_status(row.code, "suspended")
    if not ok then
      return failed(smsg, skind, "keep tenant " .. row.code .. " suspended")
    end
  end
  local now, err = reread(id)
  if not now then return nil, err end
  return provision_answer(now, false, "Schema provisioned, migrations applied"
    .. (force and " (storage recreated: earlier data dropped)" or "")
    .. (owner and "; owner " .. owner.email .. " restored" or ""))
end

local function run_migrations(req)
  local body = req.json()
  local row = find(ident_of(body, "tenant_id"))
  if body.force == true then
    rt.error(422, "validation_failed", "force is not supported: resolve drift or a "
      .. "dirty ledger with runtime migrate resolve", { force = "must be false" })
  end
  per_tenant_migrations(row)
  local target = body.target_revision
  if type(target) == "number" then
    target = math.tointeger(target) or target -- JSON numbers arrive as floats
  end
  if target == nil or target == "head" then
    target = "head"
  elseif type(target) == "string" and target:find("^%d+$") and #target < 10 then
    target = math.tointeger(tonumber(target))
  elseif math.type(target) ~= "integer" or target < 0 then
    rt.error(422, "validation_failed", "target_revision must be \"head\" or a version",
      { target_revision = "must be \"head\" or a version number (0 or more)" })
  end
  local current = row.schema_version
  if target ~= "head" and target > current then
    local status = migrate { tenant = row.code, cmd = "status" }
    local head = status.shared and math.tointeger(status.shared.head)
    if head and target > head then
      rt.error(422, "validation_failed", "target_revision " .. target
        .. " is beyond head (" .. head .. ")",
        { target_revision = "must be at most " .. head .. " (head)" })
    end
  end
  local spec = { tenant = row.code, dry_run = body.dry_run == true }
  if target == "head" then
    spec.cmd = "up"
  elseif target < current or target == 0 then
    spec.cmd, spec.to = "down", target
  else
    spec.cmd, spec.to = "up", target
  end
  local report, status = migrate(spec)
  if not spec.dry_run then
    -- steps may change roles and permissions
    local done, aerr = auth.rbac_changed(nil, row.id)
    if not done then return nil, aerr end
  end
  return migration_answer(row, { cmd = spec.cmd, from_revision = current,
    target_revision = target, dry_run = spec.dry_run }, report, status)
end

local function rollback(req)
  local row = find(req.params.id)
  local body = req.body and req.body ~= "" and rt.validate({
    type = "object", additionalProperties = false,
    properties = { steps = { type = "integer", minimum = 1, maximum = 10000 },
      dry_run = { type = "boolean" } },
  }, req.json()) or {}
  per_tenant_migrations(row)
  local spec = { tenant = row.code, cmd = "down", steps = body.steps or 1,
    dry_run = body.dry_run == true }
  local report, status = migrate(spec)
  if not spec.dry_run then
    -- steps may change roles and permissions
    local done, aerr = auth.rbac_changed(nil, row.id)
    if not done then return nil, aerr end
  end
  return migration_answer(row, { cmd = "down", steps = spec.steps,
    from_revision = row.schema_version, dry_run = spec.dry_run }, report, status)
end

local function migration_status(req)
  local row = find(req.params.id)
  local report = migrate { tenant = row.code, cmd = "status" }
  local t = report.tenants and report.tenants[1]
  if not t then
    return nil, "could not read the migration status of " .. row.code .. ": "
      .. tostring(report.errors)
  end
  local pending = json.array(t.pending or {})
  local provisioned = row.status == "active" or row.status == "suspended"
  return { json = {
    tenant_id = row.id,
    code = row.code,
    isolation = row.isolation,
    schema_name = row.isolation == "shared" and "shared"
      or (row.schema_name ~= NULL and row.schema_name) or row.database_name,
    current_revision = math.tointeger(t.version),
    head = report.shared and math.tointeger(report.shared.head),
    pending_migrations = pending,
    drift = json.array(t.drift or {}),
    dirty = t.dirty == true,
    ledger_version = math.tointeger(t.ledger_version),
    migration_status = t.status,
    last_migration_error = t.error,
    schema_provisioned = provisioned,
    migrations_applied = provisioned and #pending == 0 and t.status == "ok",
  } }
end

local function reseed(req)
  local row = find(req.params.id)
  usable(row)
  local res, msg, kind = tenant.seed(row.code)
  if not res then
    return failed(msg, kind, "seed tenant " .. row.code)
  end
  if res.applied > 0 then
    -- seeds set the system roles' permissions: cached sets may be stale
    local done, aerr = auth.rbac_changed(nil, row.id)
    if not done then return nil, aerr end
  end
  return { json = { tenant_id = row.id, code = row.code, applied = res.applied,
    skipped = res.skipped } }
end

-- ---- fleet runs --------------------------------------------------------------

local RUN_COLUMNS = [[
  id, started_by, dry_run, ok, exit_status, total, visited, migrated, failed,
  up_to_date, duration_ms, errors, started_at, finished_at]]

local function run_json(id)
  local run, err = db.query_one("SELECT " .. RUN_COLUMNS
    .. " FROM core.migration_runs WHERE id = $1", id)
  if err then return nil, err end
  if not run then
    not_found("no such migration run")
  end
  local targets, terr = db.query([[
    SELECT target, from_version, to_version, status, applied, error
    FROM core.migration_run_targets WHERE run_id = $1
    ORDER BY target = 'core' DESC, target = 'shared' DESC, target]], id)
  if terr then return nil, terr end
  for _, t in ipairs(targets) do
    json.array(t.applied) -- jsonb arrives without the array mark
  end
  run.targets = targets
  return run
end

local function fleet_run(req)
  local body = req.body and req.body ~= "" and rt.validate({
    type = "object", additionalProperties = false,
    properties = { dry_run = { type = "boolean" } },
  }, req.json()) or {}
  local started, serr = db.query_one("SELECT clock_timestamp() AS at")
  if serr then return nil, serr end
  local report, status = migrate { all = true, dry_run = body.dry_run == true }
  local fleet = report.fleet or {}
  local run, err = db.query_one([[
    INSERT INTO core.migration_runs (started_by, dry_run, ok, exit_status, total,
      visited, migrated, failed, up_to_date, duration_ms, errors, started_at,
      finished_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp())
    RETURNING id]],
    req.user.id, body.dry_run == true, status == 0, status, fleet.total or 0,
    fleet.visited or 0, fleet.migrated or 0, fleet.failed or 0, fleet.up_to_date or 0,
    math.floor(tonumber(report.duration_ms) or 0), report.errors, started.at)
  if err then return nil, err end
  for _, t in ipairs(report.targets or {}) do
    local _, terr = db.exec([[
      INSERT INTO core.migration_run_targets (run_id, target, from_version,
        to_version, status, applied, error)
      VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)]], run.id, t.target, t.from, t.to,
      t.status, json.encode(json.array(t.applied or {})), t.error)
    if terr then return nil, terr end
  end
  local out, oerr = run_json(run.id)
  if not out then return nil, oerr end
  return { status = 201, json = out,
    headers = { Location = "/api/v1/tenants/migrations/" .. run.id } }
end

local function route(method_spec)
  method_spec.scope = "core"
  method_spec.permission = PERMISSION
  method_spec.tags = TAGS
  return method_spec
end

return {
  ["/api/v1/tenants"] = {
    POST = route {
      offload = "admin", body = create_schema, handler = create,
      summary = "Create a tenant: directory row, storage, migrations and seeds",
      description = "Accepts the seed 002 body (tenant_code, tenant_name, domain, "
        .. "subdomain, admin_email) and the seed 004 body (tenant_name, domain, email, "
        .. "provision_schema, run_migrations) and answers with the seed 004 shape. "
        .. "Provisioning is atomic: provision_schema or run_migrations false is 422. "
        .. "admin_email naming a platform user makes them the owner with their "
        .. "password; otherwise admin_password creates the tenant's admin user.",
    },
    GET = route {
      handler = list,
      summary = "List tenants (?skip, ?limit, ?status, ?include_deleted=true)",
    },
  },
  ["/api/v1/tenants/:id"] = {
    GET = route {
      handler = function(req) return { json = present(find(req.params.id)) } end,
      summary = "Get a tenant by id",
    },
    PATCH = route {
      body = patch_schema, handler = patch,
      summary = "Update name, domain, subdomain or settings (a top-level merge patch)",
    },
    DELETE = route {
      offload = "admin", handler = delete,
      summary = "Delete a tenant (soft); ?purge=true drops its storage and row",
    },
  },
  ["/api/v1/tenants/code/:code"] = {
    GET = route {
      handler = function(req)
        local code = req.params.code
        if not code:find("^[a-z][a-z0-9_]+$") then
          not_found()
        end
        return { json = present(find(code)) }
      end,
      summary = "Get a tenant by code",
    },
  },
  ["/api/v1/tenants/:id/suspend"] = {
    POST = route {
      handler = function(req)
        return set_status(req, "suspended", { active = true, suspended = true })
      end,
      summary = "Suspend a tenant: its requests get 403 tenant_suspended",
    },
  },
  ["/api/v1/tenants/:id/activate"] = {
    POST = route {
      handler = function(req)
        return set_status(req, "active", { active = true, suspended = true,
          deleted = true })
      end,
      summary = "Activate a suspended (or soft-deleted) tenant",
    },
  },
  ["/api/v1/tenants/provision-schema"] = {
    POST = route {
      offload = "admin", body = provision_schema, handler = provision,
      summary = "Provision a failed tenant, or re-provision one (force_recreate)",
      description = "force_recreate drops the tenant's storage and all its data, then "
        .. "provisions it again; its recorded owner is made its first user again.",
    },
  },
  ["/api/v1/tenants/run-migrations"] = {
    POST = route {
      offload = "admin", body = migrations_schema, handler = run_migrations,
      summary = "Migrate one tenant up or down to target_revision (\"head\" or N)",
      description = "Answers with the migration engine's report; 409 migration_failed "
        .. "when the engine failed. dry_run runs the steps and rolls them back.",
    },
  },
  ["/api/v1/tenants/:id/migration-status"] = {
    GET = route {
      offload = "admin", handler = migration_status,
      summary = "A tenant's current revision, pending steps and drift",
    },
  },
  ["/api/v1/tenants/:id/rollback"] = {
    POST = route {
      offload = "admin", handler = rollback,
      summary = "Roll a tenant back by steps (default 1)",
    },
  },
  ["/api/v1/tenants/:id/seed"] = {
    POST = route {
      offload = "admin", handler = reseed,
      summary = "Apply the tenant's seeds again (changed ones only)",
    },
  },
  ["/api/v1/tenants/migrations"] = {
    POST = route {
      offload = "admin", handler = fleet_run,
      summary = "Run a fleet migration (core, shared and every tenant) and record it",
      description = "Runs synchronously: the call returns when the run has ended. The "
        .. "run and its per-target results stay readable at "
        .. "/api/v1/tenants/migrations/{run_id}.",
    },
    GET = route {
      handler = function(req)
        local skip, limit = paging(req)
        local rows, err = db.query("SELECT " .. RUN_COLUMNS
          .. " FROM core.migration_runs ORDER BY id DESC OFFSET $1 LIMIT $2", skip, limit)
        if err then return nil, err end
        return { json = rows }
      end,
      summary = "Fleet migration runs, newest first",
    },
  },
  ["/api/v1/tenants/migrations/:run_id"] = {
    GET = route {
      handler = function(req)
        local id = req.params.run_id
        if not id:find("^%d+$") or #id > 18 then
          not_found("no such migration run")
        end
        local run, err = run_json(id)
        if not run then return nil, err end
        return { json = run }
      end,
      summary = "One fleet migration run with its per-target results",
    },
  },
}

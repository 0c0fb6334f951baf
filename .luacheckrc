-- luacheck configuration: `./dev format` checks scripts/ and spec/ with it
-- (Debian's lua-check). Strict by default; every ignored code says why.

std = "lua54"

-- Methods keep the `obj:method()` form for one calling convention across an
-- object's API, whether or not a given method needs self.
ignore = { "212/self" }

-- The globals of the script sandbox (runtime/lua/sandbox.c): the base
-- functions it keeps or replaces, its libraries (string without dump) and
-- the clock functions of os. Nothing else: io, dofile, loadfile,
-- collectgarbage, warn and the rest of os are not there at run time either.
stds.rt_sandbox = {
  read_globals = {
    "_G", "_VERSION", "assert", "error", "getmetatable", "ipairs", "load",
    "next", "pairs", "pcall", "print", "rawequal", "rawget", "rawlen",
    "rawset", "require", "select", "setmetatable", "tonumber", "tostring",
    "type", "xpcall",
    "coroutine", "math", "table", "utf8",
    string = {
      fields = {
        "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
        "match", "pack", "packsize", "rep", "reverse", "sub", "unpack",
        "upper",
      },
    },
    os = { fields = { "clock", "date", "difftime", "time" } },
  },
}

-- Application scripts run in the sandbox.
files["scripts"] = { std = "rt_sandbox" }

-- Specs and their helpers run under busted (describe, it, setup, teardown,
-- before_each, after_each, assert, spy, stub, mock, pending, finally, ...).
files["spec"] = { std = "lua54+busted" }

-- Fixture scripts are application scripts: they run in the sandbox too.
files["spec/fixtures"] = { std = "rt_sandbox" }

-- A wrk script: wrk calls the global functions setup, init, request,
-- response and done, and thread:get() reads the per-thread counters, which
-- therefore have to be globals as well.
files["spec/fixtures/isolation/soak.lua"] = {
  std = "lua54",
  read_globals = { "wrk" },
  globals = {
    "setup", "init", "request", "response", "done",
    "id", "n", "answers", "mismatches", "failures",
  },
}

-- Fixtures for spec/05-scripts that do on purpose what the sandbox must
-- survive or refuse: set and read globals across requests (W111-W113),
-- reach for io, os.execute and string.dump and overwrite built-ins (W113,
-- W121, W122, W143), fill memory that is never read (W241).
files["spec/fixtures/sandbox/api/escapes.lua"] = {
  ignore = { "11.", "12.", "143" },
}
files["spec/fixtures/sandbox/api/limits.lua"] = { ignore = { "11.", "241" } }
files["spec/fixtures/sandbox/lib/util.lua"] = { globals = { "util_loads" } }
-- Reports that os.execute is not there (W143 is the point of the probe).
files["spec/fixtures/scripts/api/misc.lua"] = { ignore = { "143/os" } }
-- Module code that never ends, so what follows it is unreachable (W511).
files["spec/fixtures/loop_at_load/api/spin.lua"] = { ignore = { "511" } }

-- Scripts with syntax errors on purpose (loading them must fail cleanly).
exclude_files = {
  "spec/fixtures/broken_scripts/lib/bad.lua",
  "spec/fixtures/syntax/api/broken.lua",
}

#!/usr/bin/env bash
# bench/auth.sh - the authentication budgets (all traffic on 127.0.0.1).
#
#   1. logins never stall other routes: p99 of GET /bench/hello at a steady load
#      (16 connections, one request per connection every 2 ms) while 16 more
#      connections post logins as fast as they can (argon2id, OWASP parameters),
#      over its p99 without them. Windows with and without the login load
#      alternate BENCH_ROUNDS times, and the medians are compared, so a noisy
#      neighbour on a shared machine moves both sides alike  -> budget <= 2.0
#   2. an authenticated tenant read: GET /api/v1/users/me with a tenant JWT and
#      X-Tenant-Id, schema mode, at BENCH_CONNS connections vs pgbench -S -M
#      prepared with as many clients as the runtime's pool   -> budget >= 0.50
#      (and, for reference, with BENCH_CONNS clients)
#      p99 at BENCH_CONNS connections, saturating (the budget line: < 10 ms) and
#      paced (each connection waits 10 ms between requests)
#   3. for reference, the same database work without the runtime's own layers
#      (bench/bare_pg.c): in the runtime's architecture (a thread pool of
#      blocking workers) and with an event loop per thread, at BENCH_CONNS
#      connections: what this machine allows any server doing that work
#   4. instructions per request under callgrind (when valgrind is installed; ./dev
#      bench installs it), runtime and bare_pg block at BENCH_POOL connections:
#      a CPU cost that does not move with a noisy neighbour
#
# Env as bench/run.sh: RUNTIME_BIN, RUNTIME_DATABASE_URL, RT_BENCH_OWNER_URL,
# BARE_PG_BIN (default: bare_pg next to RUNTIME_BIN);
# optional BENCH_DURATION (seconds, default 10), BENCH_CONNS (64), BENCH_POOL (8),
# BENCH_ROUNDS (5; windows of 3 s each).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${BENCH_DURATION:-10}
DURATION=${DURATION%s}
CONNS=${BENCH_CONNS:-64}
POOL=${BENCH_POOL:-8}
ROUNDS=${BENCH_ROUNDS:-5}
PORT=${BENCH_AUTH_PORT:-18090}
BARE_PORT=$((PORT + 1))
BARE_PG_BIN=${BARE_PG_BIN:-$(dirname "$RUNTIME_BIN")/bare_pg}
PASSWORD="bench-password-0123"
WORK=$(mktemp -d /tmp/rt-bench-auth.XXXXXX)
PID=''

log() { printf '==> %s\n' "$*" >&2; }
cleanup() {
    [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# A scripts dir: the real api, migrations and seeds, plus the bench routes.
mkdir -p "$WORK/scripts/api"
cp "$REPO_DIR"/scripts/api/*.lua "$BENCH_DIR/scripts/api/bench.lua" "$WORK/scripts/api/"
ln -s "$REPO_DIR/scripts/migrations" "$WORK/scripts/migrations"
ln -s "$REPO_DIR/scripts/seeds" "$WORK/scripts/seeds"
ln -s "$REPO_DIR/scripts/lib" "$WORK/scripts/lib"
ln -s "$REPO_DIR/scripts/events" "$WORK/scripts/events"
cat >"$WORK/config.lua" <<EOF
return {
  http = { host = "127.0.0.1", port = $PORT, threads = $POOL },
  database = { pool_size = $POOL },
  scripts = { dir = "scripts" },
  log = { access = false },
}
EOF
export RUNTIME_CONFIG="$WORK/config.lua" RUNTIME_DATABASE_OWNER_URL="$RT_BENCH_OWNER_URL"
export RUNTIME_AUTH_JWT_SECRET=${RUNTIME_AUTH_JWT_SECRET:-bench-secret-0123456789abcdef0123456789}

log "migrating and making tenant bench_auth (schema)"
"$RUNTIME_BIN" migrate >/dev/null
"$RUNTIME_BIN" tenant show bench_auth >/dev/null 2>&1 ||
    "$RUNTIME_BIN" tenant create bench_auth --isolation schema >/dev/null
psql -X -q "$RT_BENCH_OWNER_URL" -c "UPDATE core.tenants SET settings =
    '{\"allow_registration\": true}', updated_at = now() WHERE code = 'bench_auth'"
if ! psql -X -qtA "$RT_BENCH_OWNER_URL" -c "SELECT to_regclass('public.pgbench_accounts')" |
    grep -q pgbench; then
    log "pgbench -i -s 10"
    pgbench -q -i -s 10 "$RT_BENCH_OWNER_URL" >/dev/null 2>&1
    psql -X -q "$RT_BENCH_OWNER_URL" -c "GRANT SELECT ON pgbench_accounts TO rt_app"
fi

"$RUNTIME_BIN" serve >"$WORK/runtime.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done
sleep 1.2 # the directory refresh picks up the settings change

base="http://127.0.0.1:$PORT"
post() { curl -s -X POST "$base$1" -H 'Content-Type: application/json' "${@:3}" -d "$2"; }
post /api/v1/auth/register "{\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}" \
    -H 'X-Tenant-Id: bench_auth' >/dev/null
TOKEN=$(post /api/v1/auth/login "{\"username\":\"bench@example.com\",\"password\":\"$PASSWORD\"}" \
    -H 'X-Tenant-Id: bench_auth' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $TOKEN ]] || { log "login failed"; tail -5 "$WORK/runtime.log"; exit 1; }

# p99 in ms from wrk --latency output
p99() { awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
    else if (v ~ /ms$/) sub(/ms$/, "", v); else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
    print v }' "$1"; }
rps() { awk '/^Requests\/sec/ { print $2 }' "$1"; }

cat >"$WORK/login.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant-Id"] = "bench_auth"
wrk.body = '{"username":"bench@example.com","password":"$PASSWORD"}'
EOF
cat >"$WORK/me.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["X-Tenant-Id"] = "bench_auth"
EOF

cat >"$WORK/paced.lua" <<EOF
function delay() return 2 end
EOF
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
hello() { wrk -t2 -c16 -d3s --latency -s "$WORK/paced.lua" "$base/bench/hello" >"$WORK/h.txt"; p99 "$WORK/h.txt"; }

log "GET /bench/hello at a steady load, $ROUNDS rounds of 3 s alone and 3 s under a login load"
: >"$WORK/alone.p99"
: >"$WORK/loaded.p99"
for _ in $(seq "$ROUNDS"); do
    hello >>"$WORK/alone.p99"
    wrk -t1 -c16 -d5s -s "$WORK/login.lua" "$base/api/v1/auth/login" >"$WORK/logins.txt" &
    LOAD=$!
    sleep 1
    hello >>"$WORK/loaded.p99"
    wait "$LOAD"
done

me_path=/api/v1/users/me
log "GET $me_path with a tenant JWT ($CONNS connections)"
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/me.lua" "$base$me_path" >"$WORK/me.txt"
log "GET $me_path paced: $CONNS connections, each waiting 10 ms between requests"
{ cat "$WORK/me.lua"; echo 'function delay() return 10 end'; } >"$WORK/me_paced.lua"
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/me_paced.lua" "$base$me_path" >"$WORK/me_paced.txt"
log "pgbench -S -M prepared -c $POOL, then -c $CONNS"
pgbench -n -S -M prepared -c "$POOL" -j 2 -T "$DURATION" "$RT_BENCH_OWNER_URL" >"$WORK/pgb.txt" 2>&1
pgbench -n -S -M prepared -c "$CONNS" -j 2 -T "$DURATION" "$RT_BENCH_OWNER_URL" >"$WORK/pgbc.txt" 2>&1
# bare_pg needs the ids the route would use: the tenant's and the user's.
tenant_id=$(psql -X -qtA "$RT_BENCH_OWNER_URL" -c "SELECT id FROM core.tenants WHERE code = 'bench_auth'")
user_id=$(curl -s "$base$me_path" -H "Authorization: Bearer $TOKEN" -H 'X-Tenant-Id: bench_auth' |
    sed -n 's/.*"id":"\{0,1\}\([0-9]*\).*/\1/p')
bare() { # bare MODE THREADS OUT: bare_pg at CONNS connections
    BARE_TENANT_ID=$tenant_id BARE_USER_ID=$user_id \
        "$BARE_PG_BIN" "$1" "$BARE_PORT" "$2" "$POOL" "$RUNTIME_DATABASE_URL" 2>"$WORK/bare.log" &
    local pid=$!
    for _ in $(seq 50); do curl -fs "http://127.0.0.1:$BARE_PORT/" >/dev/null && break; sleep 0.1; done
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$BARE_PORT/" >"$3"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true
}
log "bench/bare_pg.c: block ($POOL threads), then async ($(nproc) threads), pool $POOL"
bare block "$POOL" "$WORK/bare_block.txt"
bare async "$(nproc)" "$WORK/bare_async.txt"

# Instructions per request under callgrind: CPU work that, unlike the rates above,
# does not move with a noisy neighbour. CG_FUNCTIONS: functions (name prefixes)
# reported inclusively; __memset is libmicrohttpd clearing its connection memory.
# PRIME_URL, if set, is called POOL times at once first so that the pool opens
# all its connections before counting starts (connecting is not per request).
instructions() { # instructions NAME URL WRK_SCRIPT CMD...; prints "total fn=n ..."
    local name=$1 url=$2 script=$3 out="$WORK/cg.$1"
    shift 3
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$WORK/cg.$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 300); do curl -fs "$url" "${CURL_HEADERS[@]}" >/dev/null && break; sleep 0.2; done
    if [[ -n ${PRIME_URL:-} ]]; then
        local holds=()
        for _ in $(seq "$POOL"); do
            curl -fs "$PRIME_URL" >/dev/null &
            holds+=($!)
        done
        wait "${holds[@]}" || true
    fi
    # Warm every worker (Lua states); count only the second run.
    wrk -t1 -c"$POOL" -d3s ${script:+-s "$script"} "$url" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    wrk -t1 -c"$POOL" -d10s ${script:+-s "$script"} "$url" >"$WORK/cg.$name.wrk"
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true
    local n
    n=$(awk '/requests in/ { print $1 }' "$WORK/cg.$name.wrk")
    [[ ${n:-0} -gt 0 && -f $out.1 ]] || { log "callgrind run of $name failed"; return 0; }
    callgrind_annotate --inclusive=yes --threshold=100 "$out.1" 2>/dev/null |
        awk -v n="$n" -v fns="$CG_FUNCTIONS" '
            BEGIN { split(fns, want, " ") }
            /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
            { for (i in want) if (index($0, ":" want[i])) { v = $1; gsub(",", "", v)
                if (v + 0 > got[want[i]]) got[want[i]] = v + 0 } } # names are prefixes
            END { printf "%d", total / n; for (i = 1; i in want; i++) printf " %s=%d", want[i], got[want[i]] / n; print "" }'
}
cg_runtime='' cg_bare=''
if command -v valgrind >/dev/null; then
    log "instructions per request (callgrind, $POOL connections): runtime, then bare_pg block"
    CURL_HEADERS=(-H "Authorization: Bearer $TOKEN" -H 'X-Tenant-Id: bench_auth')
    CG_FUNCTIONS="run_request l_encode statement PQconnect __memset"
    cg_runtime=$(cd "$WORK" && RUNTIME_HTTP_PORT=$((PORT + 2)) \
        PRIME_URL="http://127.0.0.1:$((PORT + 2))/bench/hold?ms=3000" instructions runtime \
        "http://127.0.0.1:$((PORT + 2))$me_path" "$WORK/me.lua" "$RUNTIME_BIN" serve) || true
    CURL_HEADERS=()
    CG_FUNCTIONS="__memset"
    cg_bare=$(BARE_TENANT_ID=$tenant_id BARE_USER_ID=$user_id instructions bare \
        "http://127.0.0.1:$BARE_PORT/" "" "$BARE_PG_BIN" block "$BARE_PORT" "$POOL" "$POOL" \
        "$RUNTIME_DATABASE_URL") || true
fi

tps=$(awk '/^tps/ { print $3; exit }' "$WORK/pgb.txt")
tpsc=$(awk '/^tps/ { print $3; exit }' "$WORK/pgbc.txt")

a=$(median <"$WORK/alone.p99") b=$(median <"$WORK/loaded.p99") me=$(rps "$WORK/me.txt")
bb=$(rps "$WORK/bare_block.txt") ba=$(rps "$WORK/bare_async.txt")
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
cat <<EOF

| measure | result | budget |
|---|---|---|
| logins/s during the load (last round) | $(rps "$WORK/logins.txt") | |
| /bench/hello p99 per round, alone | $(tr '\n' ' ' <"$WORK/alone.p99")ms | |
| /bench/hello p99 per round, under login load | $(tr '\n' ' ' <"$WORK/loaded.p99")ms | |
| /bench/hello p99 medians, alone / under login load | $a / $b ms (x$(awk "BEGIN { printf \"%.2f\", $b / $a }")) | <= 2x |
| GET $me_path rps, p99 ($CONNS connections, saturating) | $me, $(p99 "$WORK/me.txt") ms | p99 < 10 ms |
| GET $me_path rps, p99 ($CONNS connections, paced at 10 ms per connection) | $(rps "$WORK/me_paced.txt"), $(p99 "$WORK/me_paced.txt") ms | |
| pgbench -S tps ($POOL clients = pool; $CONNS clients) | $tps; $tpsc | |
| ratio to pgbench with $POOL clients | $(ratio "$me" "$tps") | >= 0.50 |
| ratio to pgbench with $CONNS clients | $(ratio "$me" "$tpsc") | |
| bare_pg block ($POOL threads) rps, p99; ratio to pgbench with $POOL clients | $bb, $(p99 "$WORK/bare_block.txt") ms; $(ratio "$bb" "$tps") | |
| bare_pg async ($(nproc) threads) rps, p99; ratio to pgbench with $POOL clients | $ba, $(p99 "$WORK/bare_async.txt") ms; $(ratio "$ba" "$tps") | |
| runtime / bare_pg block (what the runtime's own layers leave) | $(ratio "$me" "$bb") | |
EOF
if [[ -n $cg_runtime && -n $cg_bare ]]; then
    cat <<EOF
| instructions per request: runtime; bare_pg block; ratio | ${cg_runtime%% *}; ${cg_bare%% *}; x$(ratio "${cg_runtime%% *}" "${cg_bare%% *}") | |
| runtime, inclusive per request | ${cg_runtime#* } | |
| bare_pg block, inclusive per request | ${cg_bare#* } | |
EOF
fi

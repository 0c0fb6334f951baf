#!/usr/bin/env bash
# bench/host.sh - the script host budgets (issue 6; all traffic on 127.0.0.1):
#   1. reload latency: a route file is rewritten; time until the first request
#      answered by the new code (inotify, reload delay, load, worker rebuild),
#      p50 / p90 / max of HOST_RELOADS changes, polled with curl;
#   2. throughput cost of per-tenant environments: GET /bench/hello with
#      X-Tenant-Id rotating over 200 tenants (200 environments per worker, all
#      kept) against one tenant for every request (one environment), and
#      against no tenant at all                       -> aim: cost under 10%
#   3. server RSS after 10,000 distinct tenants have each run a script, with
#      the default scripts.tenant_envs (256 per worker, least recently used
#      dropped) and with scripts.tenant_envs = 10000 (all kept)
#                                                      -> budget < 512 MiB
# Tenants are directory rows only (no storage): /bench/hello never reaches a
# tenant's tables, so this measures the script host, not provisioning.
#
# Env: RUNTIME_BIN, RUNTIME_DATABASE_URL (rt_app), RT_BENCH_OWNER_URL
# (rt_owner), RT_BENCH_ADMIN_URL (superuser). Optional: BENCH_DURATION (10),
# HOST_RELOADS (20), HOST_PORT (18094).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
RESULTS_FILE="$BENCH_DIR/last-results.md"
DURATION=${BENCH_DURATION:-10}
DURATION=${DURATION%s}
RELOADS=${HOST_RELOADS:-20}
PORT=${HOST_PORT:-18094}
FLEET=10000
DB=rt_bench_host

: "${RUNTIME_BIN:?}" "${RUNTIME_DATABASE_URL:?}" "${RT_BENCH_OWNER_URL:?}" "${RT_BENCH_ADMIN_URL:?}"

log() { printf '[host-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
admin() { psql -X -q -v ON_ERROR_STOP=1 "$RT_BENCH_ADMIN_URL" -c "$1" >/dev/null; }
with_db() { printf '%s' "$1" | sed -E "s#/[^/?]*(\?|$)#/$2\1#"; }

WORK=$(mktemp -d /tmp/rt-bench-host.XXXXXX)
PID=
stop_server() {
    if [[ -n $PID ]]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=
    fi
}
cleanup() {
    stop_server
    admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

OWNER_URL=$(with_db "$RT_BENCH_OWNER_URL" "$DB")
APP_URL=$(with_db "$RUNTIME_DATABASE_URL" "$DB")
mkdir -p "$WORK/scripts/api" "$WORK/scripts/migrations"
cp -r "$REPO_DIR/scripts/migrations/core" "$WORK/scripts/migrations/"
cp "$BENCH_DIR/scripts/api/bench.lua" "$WORK/scripts/api/"
admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
admin "CREATE DATABASE $DB OWNER rt_owner"
admin "REVOKE ALL ON DATABASE $DB FROM PUBLIC; GRANT CONNECT ON DATABASE $DB TO rt_app"
printf 'return { scripts = { dir = "%s" } }\n' "$WORK/scripts" >"$WORK/migrate.lua"
RUNTIME_DATABASE_OWNER_URL="$OWNER_URL" "$RUNTIME_BIN" migrate --config "$WORK/migrate.lua" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 "$OWNER_URL" -c "INSERT INTO core.tenants
    (code, name, isolation, status, schema_name, schema_version)
    SELECT 'h' || g, 'Host ' || g, 'schema', 'active', 't_h' || g, 0
    FROM generate_series(1, $FLEET) AS g" >/dev/null

base="http://127.0.0.1:$PORT"
# start_server ENVS: serves $WORK/scripts with scripts.tenant_envs = ENVS
start_server() {
    cat >"$WORK/config.lua" <<LUA
return {
  http = { host = "127.0.0.1", port = $PORT, threads = 2 },
  scripts = { dir = "$WORK/scripts", tenant_envs = $1 },
  log = { access = false, level = "warn" },
}
LUA
    RUNTIME_DATABASE_URL="$APP_URL" "$RUNTIME_BIN" serve --config "$WORK/config.lua" \
        >>"$WORK/serve.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -fs "$base/healthz" >/dev/null && return
        sleep 0.1
    done
    log "the server did not start"
    tail -5 "$WORK/serve.log" >&2
    exit 1
}
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status"; }
rps() { awk '/^Requests\/sec/ { print $2 }' "$1"; }
percentile() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int((NR - 1) * p / 100) + 1; printf "%.0f", v[i] }'; }
now_us() { echo $(($(date +%s%N) / 1000)); }

start_server 256

log "reload latency over $RELOADS changes"
route() { printf 'return { ["/reload"] = { GET = { scope = "public", handler = function()\n  return { body = "v%s" } end } } }\n' "$1"; }
route 0 >"$WORK/scripts/api/reload.lua"
for _ in $(seq 100); do [[ $(curl -s "$base/reload") == v0 ]] && break; sleep 0.05; done
for i in $(seq 1 "$RELOADS"); do
    t0=$(now_us)
    route "$i" >"$WORK/scripts/api/reload.lua"
    for _ in $(seq 5000); do [[ $(curl -s "$base/reload") == "v$i" ]] && break; done
    echo $((($(now_us) - t0) / 1000)) >>"$WORK/reload.ms"
    sleep 0.2
done

log "throughput: no tenant, one tenant, 200 tenants (${DURATION}s each)"
cat >"$WORK/one.lua" <<'LUA'
wrk.headers["X-Tenant-Id"] = "h1"
LUA
cat >"$WORK/many.lua" <<'LUA'
local i = 0
request = function()
  i = i % 200 + 1
  return wrk.format("GET", "/bench/hello", { ["X-Tenant-Id"] = "h" .. i })
end
LUA
wrk -t2 -c16 -d2s -s "$WORK/many.lua" "$base/bench/hello" >/dev/null # every environment made
wrk -t2 -c16 -d"${DURATION}s" "$base/bench/hello" >"$WORK/none.txt"
wrk -t2 -c16 -d"${DURATION}s" -s "$WORK/one.lua" "$base/bench/hello" >"$WORK/one.txt"
wrk -t2 -c16 -d"${DURATION}s" -s "$WORK/many.lua" "$base/bench/hello" >"$WORK/many.txt"

cat >"$WORK/fleet.lua" <<LUA
local i = 0
request = function()
  i = i % $FLEET + 1
  return wrk.format("GET", "/bench/hello", { ["X-Tenant-Id"] = "h" .. i })
end
LUA
# fleet_rss: RSS after two passes over the fleet (each tenant runs the script
# at least once on each connection's worker)
fleet_rss() {
    wrk -t2 -c4 -d8s -s "$WORK/fleet.lua" "$base/" >"$WORK/fleet.txt"
    awk '/Non-2xx/ { print "non-2xx: " $NF > "/dev/stderr" }' "$WORK/fleet.txt"
    rss
}
log "RSS after $FLEET tenants, scripts.tenant_envs = 256"
rss_idle=$(rss)
rss_lru=$(fleet_rss)
served_lru=$(awk '/requests in/ { print $1 }' "$WORK/fleet.txt")
stop_server
log "RSS after $FLEET tenants, scripts.tenant_envs = $FLEET"
start_server "$FLEET"
rss_all=$(fleet_rss)
served_all=$(awk '/requests in/ { print $1 }' "$WORK/fleet.txt")
stop_server

none=$(rps "$WORK/none.txt") one=$(rps "$WORK/one.txt") many=$(rps "$WORK/many.txt")
cost=$(awk "BEGIN { printf \"%.1f\", (1 - $many / $one) * 100 }")
verdict() { awk -v v="$1" -v b="$2" 'BEGIN { print (v < b) ? "PASS" : "MISS" }'; }
table=$(
    cat <<MD

## Script host benchmark

\`bench/host.sh\` (\`./dev bench host\`; 2 HTTP threads, wrk -t2 -c16).

| Measurement | Value | Budget | Result |
|---|---:|---|---|
| reload latency, change to first request on the new code (p50 / p90 / max of $RELOADS) | $(percentile "$WORK/reload.ms" 50) / $(percentile "$WORK/reload.ms" 90) / $(percentile "$WORK/reload.ms" 100) ms | < 1000 ms | $(verdict "$(percentile "$WORK/reload.ms" 100)" 1000) |
| GET /bench/hello rps: no tenant / one tenant / 200 tenants rotating | $none / $one / $many | | |
| cost of 200 environments vs one | ${cost}% | < 10% | $(verdict "$cost" 10) |
| server RSS idle | ${rss_idle} MiB | | |
| RSS after $FLEET tenants each ran a script, tenant_envs = 256 ($served_lru requests) | ${rss_lru} MiB | < 512 MiB | $(verdict "$rss_lru" 512) |
| the same with tenant_envs = $FLEET (every environment kept; $served_all requests) | ${rss_all} MiB | < 512 MiB | $(verdict "$rss_all" 512) |
MD
)
printf '%s\n' "$table"
printf '%s\n' "$table" >>"$RESULTS_FILE"

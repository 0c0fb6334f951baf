#!/usr/bin/env bash
# Tenancy benchmark (DESIGN.md section 6):
#   1. `runtime tenant create` latency (directory row, storage, all tenant
#      migrations, all seeds) for schema and database tenants: p50 and p90 of
#      the time to active (timed by the command), the command's wall time
#      (process start, and replenishing the pre-made storage after the tenant
#      is reported), and the same with pre-made storage switched off;
#   2. the server's RSS idle, and after serving requests for 10,000 distinct
#      tenants (directory cache and per-tenant scoping).
# Runs against scratch databases and drops them. Prints a markdown table and
# appends it to bench/last-results.md.
#
# Env: RUNTIME_BIN, RUNTIME_DATABASE_URL (rt_app), RT_BENCH_OWNER_URL (rt_owner),
#      RT_BENCH_ADMIN_URL (superuser)
# Optional: TEN_SCHEMA=30 TEN_DATABASE=5 TEN_INPLACE=10 TEN_FLEET=10000 TEN_PORT=18082
# The cluster is whatever the URLs name; ./dev bench uses the dev cluster, which
# runs with PostgreSQL's default durability (fsync and synchronous_commit on).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
RESULTS_FILE="$BENCH_DIR/last-results.md"
TEN_SCHEMA=${TEN_SCHEMA:-30}
TEN_DATABASE=${TEN_DATABASE:-5}
TEN_INPLACE=${TEN_INPLACE:-10}
TEN_FLEET=${TEN_FLEET:-10000}
TEN_PORT=${TEN_PORT:-18082}
DB=rt_bench_tenants

: "${RUNTIME_BIN:?}" "${RUNTIME_DATABASE_URL:?}" "${RT_BENCH_OWNER_URL:?}" "${RT_BENCH_ADMIN_URL:?}"

log() { printf '[tenants-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
admin() { psql -X -q -v ON_ERROR_STOP=1 "$RT_BENCH_ADMIN_URL" -c "$1" >/dev/null; }
with_db() { printf '%s' "$1" | sed -E "s#/[^/?]*(\?|$)#/$2\1#"; }

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rt tenant spares --drop >/dev/null 2>&1 || true # the template databases
    for i in $(seq 1 "$TEN_DATABASE"); do admin "DROP DATABASE IF EXISTS t_bdb$i WITH (FORCE)" || true; done
    for i in $(seq 1 "$TEN_INPLACE"); do admin "DROP DATABASE IF EXISTS t_idb$i WITH (FORCE)" || true; done
    admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

OWNER_URL=$(with_db "$RT_BENCH_OWNER_URL" "$DB")
APP_URL=$(with_db "$RUNTIME_DATABASE_URL" "$DB")
mkdir -p "$WORK/scripts/migrations"
cp -r "$REPO_DIR/scripts/migrations/core" "$REPO_DIR/scripts/migrations/tenant" \
    "$WORK/scripts/migrations/"
cp -r "$REPO_DIR/scripts/seeds" "$WORK/scripts/"
printf 'return { scripts = { dir = "%s" }, log = { level = "warn" } }\n' "$WORK/scripts" \
    >"$WORK/config.lua"
rt() { RUNTIME_DATABASE_OWNER_URL="$OWNER_URL" "$RUNTIME_BIN" "$@" --config "$WORK/config.lua"; }

admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
admin "CREATE DATABASE $DB OWNER rt_owner"
admin "REVOKE ALL ON DATABASE $DB FROM PUBLIC; GRANT CONNECT ON DATABASE $DB TO rt_app"
rt migrate >/dev/null

# percentile FILE P: the P-th percentile of the numbers in FILE
percentile() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int((NR - 1) * p / 100) + 1; printf "%.0f", v[i] }'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# create_many prefix isolation count [env...]: the time to active of each in
# $WORK/<prefix>.ms, the command's wall time in $WORK/<prefix>.wall
create_many() {
    local prefix=$1 isolation=$2 n=$3 i t0 out
    shift 3
    for i in $(seq 1 "$n"); do
        t0=$(now_ms)
        out=$(env "$@" RUNTIME_DATABASE_OWNER_URL="$OWNER_URL" "$RUNTIME_BIN" tenant create \
            "$prefix$i" --isolation "$isolation" --json --config "$WORK/config.lua")
        echo $(($(now_ms) - t0)) >>"$WORK/$prefix.wall"
        sed -E 's/.*"duration_ms":([0-9.]+).*/\1/' <<<"$out" >>"$WORK/$prefix.ms"
    done
}
log "creating $TEN_SCHEMA schema tenants and $TEN_DATABASE database tenants"
create_many bs schema "$TEN_SCHEMA"
create_many bdb database "$TEN_DATABASE"
log "creating $TEN_INPLACE schema and database tenants without pre-made storage"
create_many is schema "$TEN_INPLACE" RUNTIME_TENANCY_SPARE_SCHEMAS=0
create_many idb database "$TEN_INPLACE" RUNTIME_TENANCY_DATABASE_TEMPLATE=false

log "registering $TEN_FLEET directory entries and serving each of them once"
psql -X -q -v ON_ERROR_STOP=1 "$OWNER_URL" -c "INSERT INTO core.tenants
    (code, name, isolation, status, schema_name, schema_version)
    SELECT 'm' || g, 'Many ' || g, 'schema', 'active', 't_m' || g, 0
    FROM generate_series(1, $TEN_FLEET) AS g" >/dev/null
RUNTIME_DATABASE_URL="$APP_URL" RUNTIME_HTTP_PORT=$TEN_PORT RUNTIME_LOG_ACCESS=false \
    "$RUNTIME_BIN" serve --config "$BENCH_DIR/config.lua" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$TEN_PORT/healthz" >/dev/null && break
    sleep 0.1
done
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }
rss_idle=$(rss)
cat >"$WORK/tenants.lua" <<LUA
local i = 0
request = function()
  i = i % $TEN_FLEET + 1
  return wrk.format("GET", "/bench/tenant", { ["X-Tenant-Id"] = "m" .. i })
end
LUA
wrk -t2 -c16 -d8s -s "$WORK/tenants.lua" "http://127.0.0.1:$TEN_PORT/" >"$WORK/wrk.out"
served=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
non2xx=$(awk '/Non-2xx/ { print $NF }' "$WORK/wrk.out")
rss_after=$(rss)

verdict() { awk -v v="$1" -v b="$2" 'BEGIN { print (v < b) ? "PASS" : "MISS" }'; }
s50=$(percentile "$WORK/bs.ms" 50)
s90=$(percentile "$WORK/bs.ms" 90)
d50=$(percentile "$WORK/bdb.ms" 50)
d90=$(percentile "$WORK/bdb.ms" 90)
sw50=$(percentile "$WORK/bs.wall" 50)
dw50=$(percentile "$WORK/bdb.wall" 50)
i50=$(percentile "$WORK/is.ms" 50)
id50=$(percentile "$WORK/idb.ms" 50)
table=$(
    cat <<MD

## Tenancy benchmark

\`bench/tenants.sh\` (scratch database; real tenant migrations and seeds).

| Measurement | Value | Budget | Result |
|---|---:|---|---|
| create a schema tenant, to active (p50 / p90 of $TEN_SCHEMA) | ${s50} ms / ${s90} ms | p50 < 100 ms | $(verdict "$s50" 100) |
| create a database tenant, to active (p50 / p90 of $TEN_DATABASE) | ${d50} ms / ${d90} ms | report | |
| the same commands' wall time, with replenishing (p50 schema / database) | ${sw50} ms / ${dw50} ms | | |
| without pre-made storage, to active (p50 of $TEN_INPLACE, schema / database) | ${i50} ms / ${id50} ms | | |
| server RSS, idle | ${rss_idle} MiB | < 30 MiB | $(verdict "$rss_idle" 30) |
| server RSS after serving $TEN_FLEET distinct tenants ($served requests${non2xx:+, $non2xx non-2xx}) | ${rss_after} MiB | < 512 MiB | $(verdict "$rss_after" 512) |
MD
)
printf '%s\n' "$table"
printf '%s\n' "$table" >>"$RESULTS_FILE"

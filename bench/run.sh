#!/usr/bin/env bash
# bench/run.sh - performance budgets for the runtime (all traffic on 127.0.0.1).
#
# Measures, on this machine:
#   1. bare libmicrohttpd baseline (bench/bare_mhd.c)            -> wrk rps
#   2. runtime GET /bench/hello           (Lua handler, no DB)   -> wrk rps, p99
#   3. runtime GET /bench/accounts/:aid   (one PK read, random)  -> wrk rps, p99
#   4. pgbench -S -M prepared with as many clients as the runtime's DB pool
# and checks the budgets:
#   runtime no-DB rps / bare MHD rps    >= 0.60
#   runtime DB-read rps / pgbench tps   >= 0.50
#   p99 latency of each runtime route    < 10 ms at BENCH_CONNS connections
#
# Required env:
#   RUNTIME_BIN            path to the runtime binary
#   BARE_MHD_BIN           path to the bare_mhd binary
#   RUNTIME_DATABASE_URL   libpq URL, application role (rt_app)
#   RT_BENCH_OWNER_URL     libpq URL, rt_owner (owner of database "runtime")
# Optional env:
#   RT_BENCH_ADMIN_URL     superuser URL (only used to report the server version)
#   BENCH_DURATION=10s     per measured wrk / pgbench run (N, Ns or Nm)
#   BENCH_CONNS=64         wrk connections
#   BENCH_THREADS=2        wrk threads
#   BENCH_HTTP_THREADS     HTTP server threads, bare_mhd and runtime alike (default:
#                          BENCH_POOL, so every pooled connection can be busy: a
#                          runtime worker thread blocks while its query runs)
#   BENCH_POOL=8           runtime DB pool size = pgbench clients
#   BENCH_WARMUP=2         seconds of discarded wrk warm-up per target (0 = none)
#   BENCH_BARE_PORT=18081  BENCH_RUNTIME_PORT=18080
#   BENCH_KEEP=1           keep the raw wrk/pgbench/server logs (path is printed)
#
# Budgets are reported as PASS/MISS and never change the exit status; the script
# exits non-zero only when a step could not be run. The result table is printed
# and written to bench/last-results.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
RESULTS_FILE="$BENCH_DIR/last-results.md"

BENCH_DURATION=${BENCH_DURATION:-10s}
BENCH_CONNS=${BENCH_CONNS:-64}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_POOL=${BENCH_POOL:-8}
BENCH_HTTP_THREADS=${BENCH_HTTP_THREADS:-$BENCH_POOL}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_BARE_PORT=${BENCH_BARE_PORT:-18081}
BENCH_RUNTIME_PORT=${BENCH_RUNTIME_PORT:-18080}
BENCH_KEEP=${BENCH_KEEP:-0}

readonly SCALE=10
readonly ACCOUNTS=$((SCALE * 100000))
readonly HEALTH_TIMEOUT=20
readonly STOP_TIMEOUT=15
readonly BUDGET_NODB_RATIO=0.60
readonly BUDGET_DB_RATIO=0.50
readonly BUDGET_P99_MS=10

# PostgreSQL client defaults: bounded connects, pgbench tables live in public.
export PGCONNECT_TIMEOUT=10
export PGOPTIONS="-c search_path=public"

log() {
  printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

# why MESSAGE: log the reason a step failed; the caller's FAILED entry quotes it.
REASON=""
why() {
  REASON=$*
  log "$*"
}

die() {
  log "error: $*"
  exit 2
}

# ---------------------------------------------------------------- processes --

WORK_DIR=$(mktemp -d /tmp/rt-bench.XXXXXX)
PIDS=()

is_running() {
  local pid=$1 stat
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

forget_pid() {
  local pid=$1 p keep=()
  for p in "${PIDS[@]}"; do
    [[ $p == "$pid" ]] || keep+=("$p")
  done
  PIDS=("${keep[@]}")
}

# stop_pid PID NAME: SIGTERM, wait up to STOP_TIMEOUT s, then SIGKILL; reaps the
# child and sets STOP_RC to its exit status (or "killed" when SIGKILL was needed).
STOP_RC=0
STOP_SIGNALLED=0
stop_pid() {
  local pid=$1 name=$2 i rc=0
  STOP_RC=0
  STOP_SIGNALLED=0
  if is_running "$pid"; then
    STOP_SIGNALLED=1
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      is_running "$pid" || break
      sleep 0.1
    done
    if is_running "$pid"; then
      log "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      STOP_RC=killed
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  [[ $STOP_RC == killed ]] || STOP_RC=$rc
  forget_pid "$pid"
}

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    log "cleanup: stopping pid $pid"
    stop_pid "$pid" "pid $pid"
  done
  if [[ $BENCH_KEEP == 1 ]]; then
    log "raw logs kept in $WORK_DIR"
  else
    rm -rf "$WORK_DIR"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# wait_http URL PID TIMEOUT: until URL answers 200, the process dies, or timeout.
wait_http() {
  local url=$1 pid=$2 timeout_s=$3 code deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    if ! is_running "$pid"; then
      why "process $pid exited while waiting for $url"
      return 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null) || true
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  why "no 200 from $url within ${timeout_s}s (last status: ${code:-none})"
  return 1
}

show_log_tail() {
  local file=$1
  [[ -s $file ]] || return 0
  log "last lines of $(basename "$file"):"
  tail -n 20 "$file" | sed 's/^/    /' >&2
}

# ------------------------------------------------------------------- inputs --

for tool in wrk curl pgbench psql timeout awk; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done

DURATION_S=0
if [[ $BENCH_DURATION =~ ^([0-9]{1,4})(s|m)?$ ]]; then
  DURATION_S=$((10#${BASH_REMATCH[1]}))
  [[ ${BASH_REMATCH[2]} == m ]] && DURATION_S=$((DURATION_S * 60))
fi
((DURATION_S >= 1 && DURATION_S <= 3600)) ||
  die "BENCH_DURATION must be N, Ns or Nm (1 s .. 60 m), got '$BENCH_DURATION'"
for var in BENCH_CONNS BENCH_THREADS BENCH_HTTP_THREADS BENCH_POOL BENCH_BARE_PORT BENCH_RUNTIME_PORT BENCH_WARMUP; do
  [[ ${!var} =~ ^[0-9]{1,5}$ ]] || die "$var must be a non-negative integer, got '${!var}'"
  printf -v "$var" '%d' "$((10#${!var}))"
done
((BENCH_BARE_PORT >= 1 && BENCH_BARE_PORT <= 65535 && BENCH_RUNTIME_PORT >= 1 &&
  BENCH_RUNTIME_PORT <= 65535 && BENCH_BARE_PORT != BENCH_RUNTIME_PORT)) ||
  die "BENCH_BARE_PORT and BENCH_RUNTIME_PORT must be distinct ports"
((BENCH_CONNS >= 1 && BENCH_THREADS >= 1 && BENCH_POOL >= 1)) ||
  die "BENCH_CONNS, BENCH_THREADS and BENCH_POOL must be >= 1"
((BENCH_THREADS <= BENCH_CONNS)) || die "BENCH_THREADS must not exceed BENCH_CONNS (wrk)"
((BENCH_WARMUP <= 60)) || die "BENCH_WARMUP must be <= 60"
PGBENCH_JOBS=$((BENCH_POOL < 2 ? BENCH_POOL : 2))

# ------------------------------------------------------------------ results --

declare -A R=()
FAILED=()
WARNINGS=()

fail() {
  FAILED+=("$1")
  log "FAILED: $1"
}

warn() {
  WARNINGS+=("$1")
  log "warning: $1"
}

# parse_wrk KEY FILE: fills R[KEY_rps], R[KEY_p99] (ms), R[KEY_non2xx], R[KEY_sockerr].
parse_wrk() {
  local key=$1 file=$2
  R[${key}_rps]=$(awk '$1 == "Requests/sec:" { print $2 }' "$file")
  R[${key}_p99]=$(awk '
    $1 == "99%" {
      v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
      f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
      if (f > 0) printf "%.2f", v * f
    }' "$file")
  R[${key}_non2xx]=$(awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$file")
  R[${key}_sockerr]=$(awk '
    /Socket errors:/ { gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) n += $i }
    END { print n + 0 }' "$file")
  [[ -n ${R[${key}_rps]} && -n ${R[${key}_p99]} ]]
}

# run_wrk KEY LABEL URL [LUA_SCRIPT]: optional warm-up, then the measured run.
run_wrk() {
  local key=$1 label=$2 url=$3 script=${4:-} out="$WORK_DIR/wrk-$1.txt"
  local args=(-t"$BENCH_THREADS" -c"$BENCH_CONNS")
  [[ -n $script ]] && args+=(-s "$script")
  if ((BENCH_WARMUP > 0)); then
    log "$label: warm-up ${BENCH_WARMUP}s"
    if ! timeout --foreground -k 5 $((BENCH_WARMUP + 30)) wrk "${args[@]}" -d"${BENCH_WARMUP}s" "$url" \
      >"$WORK_DIR/wrk-$key-warmup.txt" 2>&1; then
      cat "$WORK_DIR/wrk-$key-warmup.txt" >&2
      why "$label: wrk warm-up failed"
      return 1
    fi
  fi
  log "$label: wrk ${args[*]} -d${DURATION_S}s --latency $url"
  if ! timeout --foreground -k 5 $((DURATION_S + 60)) wrk "${args[@]}" -d"${DURATION_S}s" --latency "$url" \
    >"$out" 2>&1; then
    cat "$out" >&2
    why "$label: wrk failed"
    return 1
  fi
  sed 's/^/    /' "$out" >&2
  if ! parse_wrk "$key" "$out"; then
    why "$label: could not parse wrk output"
    return 1
  fi
  local non2xx=${R[${key}_non2xx]} sockerr=${R[${key}_sockerr]}
  if ((non2xx > 0)); then
    warn "$label: $non2xx non-2xx responses (rps not comparable, marked INVALID)"
  fi
  if ((sockerr > 0)); then
    warn "$label: $sockerr socket errors"
  fi
}

# expect_200 LABEL URL: one request that must answer 200 before load is applied.
expect_200() {
  local label=$1 url=$2 body code
  body=$(curl -s --max-time 5 -w '\n%{http_code}' "$url" 2>&1) || true
  code=${body##*$'\n'}
  body=${body%$'\n'*}
  if [[ $code != 200 ]]; then
    why "$label: smoke request $url -> ${code:-no response}: ${body:0:300}"
    return 1
  fi
  log "$label: smoke request ok: ${body:0:120}"
}

# ------------------------------------------------------------------- phases --

psql_at() {
  local url=$1
  shift
  psql "$url" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

DB_READY=0
phase_prepare_db() {
  local who n count app_role check
  REASON="psql as rt_owner/app role failed (see above)"
  if [[ -z ${RT_BENCH_OWNER_URL:-} || -z ${RUNTIME_DATABASE_URL:-} ]]; then
    why "RT_BENCH_OWNER_URL and RUNTIME_DATABASE_URL must both be set"
    return 1
  fi
  who=$(psql_at "$RT_BENCH_OWNER_URL" -c "SELECT current_user || '@' || current_database()") ||
    return 1
  log "pgbench tables go to $who (schema public)"
  n=$(psql_at "$RT_BENCH_OWNER_URL" -c "
    SELECT count(*) FROM (VALUES ('accounts'), ('branches'), ('tellers'), ('history')) AS t (name)
    WHERE to_regclass('public.pgbench_' || name) IS NOT NULL") || return 1
  count=""
  if [[ $n == 4 ]]; then
    count=$(psql_at "$RT_BENCH_OWNER_URL" -c "
      SELECT (SELECT count(*) FROM public.pgbench_accounts) || '/'
          || (SELECT count(*) FROM public.pgbench_branches)") || return 1
  fi
  if [[ $count == "$ACCOUNTS/$SCALE" ]]; then
    log "pgbench tables present (scale $SCALE), skipping pgbench -i"
  else
    log "initialising pgbench tables, scale $SCALE (found: ${count:-$n/4 tables})"
    timeout --foreground -k 5 900 pgbench -i -s "$SCALE" -q "$RT_BENCH_OWNER_URL" \
      >"$WORK_DIR/pgbench-init.txt" 2>&1 || {
      cat "$WORK_DIR/pgbench-init.txt" >&2
      why "pgbench -i failed"
      return 1
    }
  fi

  app_role=$(psql_at "$RUNTIME_DATABASE_URL" -c "SELECT current_user") || return 1
  log "granting read access on pgbench_accounts to $app_role"
  REASON="GRANT SELECT ON pgbench_accounts TO $app_role failed"
  psql_at "$RT_BENCH_OWNER_URL" -v app_role="$app_role" <<'SQL' || return 1
GRANT SELECT ON public.pgbench_accounts TO :"app_role";
SQL
  # Usually already granted through PUBLIC; only needed if the setup revoked it.
  psql_at "$RT_BENCH_OWNER_URL" -v app_role="$app_role" <<'SQL' 2>/dev/null ||
GRANT USAGE ON SCHEMA public TO :"app_role";
SQL
    log "note: could not GRANT USAGE ON SCHEMA public (checking access anyway)"
  # The runtime's own role must see the table through its default search_path.
  REASON="$app_role cannot read pgbench_accounts"
  check=$(PGOPTIONS="" psql_at "$RUNTIME_DATABASE_URL" \
    -c "SELECT count(*) FROM pgbench_accounts WHERE aid IN (1, $ACCOUNTS)") || return 1
  [[ $check == 2 ]] || {
    why "$app_role cannot read pgbench_accounts rows (got '$check')"
    return 1
  }
  DB_READY=1
}

phase_bare() {
  local pid rc=0 url="http://127.0.0.1:$BENCH_BARE_PORT/"
  if [[ -z ${BARE_MHD_BIN:-} || ! -x ${BARE_MHD_BIN:-} ]]; then
    why "BARE_MHD_BIN is not set or not executable: '${BARE_MHD_BIN:-}'"
    return 1
  fi
  if port_in_use "$BENCH_BARE_PORT"; then
    why "port $BENCH_BARE_PORT on 127.0.0.1 is already in use"
    return 1
  fi
  "$BARE_MHD_BIN" "$BENCH_BARE_PORT" "$BENCH_HTTP_THREADS" >"$WORK_DIR/bare_mhd.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  log "bare_mhd started (pid $pid, $BENCH_HTTP_THREADS threads)"
  wait_http "$url" "$pid" 10 || rc=1
  ((rc == 0)) && { expect_200 "bare_mhd" "$url" || rc=1; }
  ((rc == 0)) && { run_wrk bare "bare_mhd" "$url" || rc=1; }
  stop_pid "$pid" bare_mhd
  if ((STOP_SIGNALLED)) && [[ $STOP_RC != 0 ]]; then
    warn "bare_mhd exited with status $STOP_RC after SIGTERM"
  elif ((!STOP_SIGNALLED)); then
    why "bare_mhd exited early with status $STOP_RC"
    rc=1
  fi
  ((rc == 0)) || show_log_tail "$WORK_DIR/bare_mhd.log"
  return "$rc"
}

phase_runtime() {
  local pid rc=0 route_failed=0 base="http://127.0.0.1:$BENCH_RUNTIME_PORT"
  local script="$WORK_DIR/accounts.lua" v unset_args=(-u PGOPTIONS -u PGCONNECT_TIMEOUT)
  if [[ -z ${RUNTIME_BIN:-} || ! -x ${RUNTIME_BIN:-} ]]; then
    why "RUNTIME_BIN is not set or not executable: '${RUNTIME_BIN:-}'"
    return 1
  fi
  if port_in_use "$BENCH_RUNTIME_PORT"; then
    why "port $BENCH_RUNTIME_PORT on 127.0.0.1 is already in use"
    return 1
  fi
  # Only bench/config.lua plus the overrides below may configure the runtime:
  # drop any other RUNTIME_* variable inherited from the caller (e.g. the dev env).
  for v in $(compgen -e); do
    [[ $v == RUNTIME_* && $v != RUNTIME_DATABASE_URL ]] && unset_args+=(-u "$v")
  done
  env "${unset_args[@]}" \
    RUNTIME_HTTP_HOST=127.0.0.1 \
    RUNTIME_HTTP_PORT="$BENCH_RUNTIME_PORT" \
    RUNTIME_HTTP_THREADS="$BENCH_HTTP_THREADS" \
    RUNTIME_DATABASE_POOL_SIZE="$BENCH_POOL" \
    "$RUNTIME_BIN" serve --config "$BENCH_DIR/config.lua" >"$WORK_DIR/runtime.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  log "runtime started (pid $pid, $BENCH_HTTP_THREADS threads, pool $BENCH_POOL)"
  if wait_http "$base/healthz" "$pid" "$HEALTH_TIMEOUT"; then
    if expect_200 "runtime /bench/hello" "$base/bench/hello" &&
      run_wrk hello "runtime /bench/hello" "$base/bench/hello"; then
      :
    else
      fail "runtime /bench/hello: $REASON"
      route_failed=1
    fi
    if ((DB_READY)); then
      cat >"$script" <<LUA
-- wrk script: random existing account per request.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  math.randomseed(os.time() * 1000 + tid)
end
request = function()
  return wrk.format("GET", "/bench/accounts/" .. math.random(1, $ACCOUNTS))
end
LUA
      if wait_http "$base/readyz" "$pid" "$HEALTH_TIMEOUT" &&
        expect_200 "runtime /bench/accounts/:aid" "$base/bench/accounts/1" &&
        run_wrk accounts "runtime /bench/accounts/:aid" "$base/" "$script"; then
        :
      else
        fail "runtime /bench/accounts/:aid: $REASON"
        route_failed=1
      fi
    else
      fail "runtime /bench/accounts/:aid benchmark (database not prepared)"
    fi
  else
    rc=1
  fi
  stop_pid "$pid" runtime
  if ((STOP_SIGNALLED)) && [[ $STOP_RC != 0 ]]; then
    warn "runtime exited with status $STOP_RC after SIGTERM (expected 0)"
  elif ((!STOP_SIGNALLED)); then
    why "runtime exited early with status $STOP_RC"
    rc=1
  fi
  if ((rc != 0 || route_failed != 0)); then
    show_log_tail "$WORK_DIR/runtime.log"
  fi
  return "$rc"
}

phase_pgbench() {
  local out="$WORK_DIR/pgbench.txt" line
  log "pgbench -S -M prepared -c $BENCH_POOL -j $PGBENCH_JOBS -T $DURATION_S -n"
  if ! timeout --foreground -k 5 $((DURATION_S + 60)) pgbench -S -M prepared -c "$BENCH_POOL" \
    -j "$PGBENCH_JOBS" -T "$DURATION_S" -n "$RT_BENCH_OWNER_URL" >"$out" 2>&1; then
    cat "$out" >&2
    why "pgbench -S failed"
    return 1
  fi
  sed 's/^/    /' "$out" >&2
  line=$(awk '/^tps = .*without initial connection time/ { print; exit }' "$out")
  [[ -n $line ]] || line=$(awk '/^tps = .*excluding connections/ { print; exit }' "$out")
  [[ -n $line ]] || line=$(awk '/^tps = / { print; exit }' "$out")
  R[pgbench_tps]=$(awk '{ print $3 }' <<<"$line")
  R[pgbench_lat]=$(awk '/^latency average = / { print $4; exit }' "$out")
  [[ -n ${R[pgbench_tps]} ]] || {
    why "could not parse pgbench output"
    return 1
  }
}

# ------------------------------------------------------------------- report --

num_or_na() {
  local v=${1:-} fmt=$2
  # shellcheck disable=SC2059 # the format is a fixed argument of this script
  if [[ -n $v ]]; then printf "$fmt" "$v"; else printf 'n/a'; fi
}

ratio() {
  [[ -n ${1:-} && -n ${2:-} ]] || return 0
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}

# verdict VALUE OP LIMIT [INVALID]: PASS / MISS / n/a / INVALID
verdict() {
  local v=${1:-} op=$2 limit=$3 invalid=${4:-0}
  if [[ -z $v ]]; then
    echo "n/a"
  elif ((invalid)); then
    echo "INVALID"
  elif awk -v v="$v" -v l="$limit" -v op="$op" \
    'BEGIN { exit !((op == ">=" && v >= l) || (op == "<" && v < l)) }'; then
    echo "PASS"
  else
    echo "MISS"
  fi
}

errors_note() {
  local key=$1 n=${R[${1}_non2xx]:-} s=${R[${1}_sockerr]:-}
  [[ -n $n ]] || return 0
  if ((n > 0 || s > 0)); then
    printf '(%s non-2xx, %s socket errors)' "$n" "$s"
  else
    printf '(no errors)'
  fi
}

report() {
  local rev dirty cpu pgver mhdver status
  local r_nodb r_db inv_hello=0 inv_acc=0
  rev=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null) || rev="(no commit)"
  dirty=$(git -C "$REPO_DIR" status --porcelain 2>/dev/null | head -n 1) || true
  [[ -n $dirty ]] && rev="$rev (dirty worktree)"
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null) || true
  pgver=unknown
  if [[ -n ${RT_BENCH_ADMIN_URL:-${RT_BENCH_OWNER_URL:-}} ]]; then
    pgver=$(psql_at "${RT_BENCH_ADMIN_URL:-$RT_BENCH_OWNER_URL}" -c "SHOW server_version" \
      2>/dev/null) || pgver=unknown
  fi
  mhdver=$(pkg-config --modversion libmicrohttpd 2>/dev/null) || mhdver="unknown"

  [[ ${R[hello_non2xx]:-0} == 0 ]] || inv_hello=1
  [[ ${R[accounts_non2xx]:-0} == 0 ]] || inv_acc=1
  r_nodb=$(ratio "${R[hello_rps]:-}" "${R[bare_rps]:-}")
  r_db=$(ratio "${R[accounts_rps]:-}" "${R[pgbench_tps]:-}")
  if ((${#FAILED[@]} == 0)); then status="complete"; else status="INCOMPLETE"; fi

  cat <<EOF
## Benchmark results

Run: $status. $BENCH_CONNS connections, ${DURATION_S}s per run (after ${BENCH_WARMUP}s warm-up), \
$BENCH_HTTP_THREADS HTTP threads, $BENCH_THREADS wrk threads, DB pool $BENCH_POOL, pgbench scale $SCALE.

| Measurement | Value | Budget | Result | Notes |
|---|---:|---|---|---|
| bare MHD rps (\`GET /\`) | $(num_or_na "${R[bare_rps]:-}" '%.0f') | | | p99 $(num_or_na "${R[bare_p99]:-}" '%.2f ms') $(errors_note bare) |
| runtime no-DB rps (\`GET /bench/hello\`) | $(num_or_na "${R[hello_rps]:-}" '%.0f') | | | $(errors_note hello) |
| **ratio** runtime no-DB / bare MHD | $(num_or_na "$r_nodb" '%s') | >= $BUDGET_NODB_RATIO | $(verdict "$r_nodb" ">=" "$BUDGET_NODB_RATIO" "$inv_hello") | |
| runtime DB-read rps (\`GET /bench/accounts/:aid\`) | $(num_or_na "${R[accounts_rps]:-}" '%.0f') | | | random aid 1..$ACCOUNTS $(errors_note accounts) |
| pgbench -S -M prepared tps ($BENCH_POOL clients) | $(num_or_na "${R[pgbench_tps]:-}" '%.0f') | | | latency avg $(num_or_na "${R[pgbench_lat]:-}" '%s ms') |
| **ratio** runtime DB-read / pgbench | $(num_or_na "$r_db" '%s') | >= $BUDGET_DB_RATIO | $(verdict "$r_db" ">=" "$BUDGET_DB_RATIO" "$inv_acc") | |
| **p99** \`/bench/hello\` @ $BENCH_CONNS conns | $(num_or_na "${R[hello_p99]:-}" '%.2f ms') | < $BUDGET_P99_MS ms | $(verdict "${R[hello_p99]:-}" "<" "$BUDGET_P99_MS" "$inv_hello") | |
| **p99** \`/bench/accounts/:aid\` @ $BENCH_CONNS conns | $(num_or_na "${R[accounts_p99]:-}" '%.2f ms') | < $BUDGET_P99_MS ms | $(verdict "${R[accounts_p99]:-}" "<" "$BUDGET_P99_MS" "$inv_acc") | |

Machine: $(nproc) CPUs (${cpu:-unknown CPU}), Linux $(uname -r); load generator, servers and
PostgreSQL share these CPUs, so the ratios matter more than absolute numbers.
Date: $(date -u '+%Y-%m-%d %H:%M:%SZ'). Git: $rev. libmicrohttpd $mhdver, PostgreSQL $pgver,
$(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }'), $(pgbench --version | awk '{ print $1, $3 }').
EOF
  if ((${#FAILED[@]} > 0)); then
    printf '\nFailed steps:\n'
    printf -- '- %s\n' "${FAILED[@]}"
  fi
  if ((${#WARNINGS[@]} > 0)); then
    printf '\nWarnings:\n'
    printf -- '- %s\n' "${WARNINGS[@]}"
  fi
}

# --------------------------------------------------------------------- main --

log "raw output in $WORK_DIR (kept only with BENCH_KEEP=1)"

REASON=""
phase_prepare_db || fail "database preparation: $REASON"
REASON=""
phase_bare || fail "bare MHD: $REASON"
REASON=""
phase_runtime || fail "runtime: $REASON"
if ((DB_READY)); then
  REASON=""
  phase_pgbench || fail "pgbench: $REASON"
else
  fail "pgbench -S (database not prepared)"
fi

report >"$WORK_DIR/results.md"
cp "$WORK_DIR/results.md" "$RESULTS_FILE"
echo
cat "$RESULTS_FILE"
echo
log "results written to ${RESULTS_FILE#"$REPO_DIR"/}"

((${#FAILED[@]} == 0)) || exit 1
exit 0

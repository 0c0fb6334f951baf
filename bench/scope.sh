#!/usr/bin/env bash
# bench/scope.sh - what the signed scope costs PostgreSQL (docs/SECURITY.md).
#
# The database work of GET /api/v1/users/me as pgbench runs it (8 clients, -M
# prepared, a pipeline per transaction: the five per-transaction settings, then a
# primary-key read under row-level security), against two copies of one table
# that differ only in their policy:
#   plain   tenant_id = app.tenant_id           (what any statement could change)
#   signed  tenant_id = (SELECT rt_scope.tenant_id())   (the policies since
#           tenant migration 0004: the scope's tag is checked once per statement)
# Runs alternate BENCH_ROUNDS times; the medians and their ratio are printed.
# Env: RUNTIME_DATABASE_URL (rt_app), RT_BENCH_OWNER_URL (rt_owner);
# optional BENCH_DURATION (seconds per run, default 5), BENCH_ROUNDS (3).
set -euo pipefail

DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
WORK=$(mktemp -d /tmp/rt-bench-scope.XXXXXX)
log() { printf '==> %s\n' "$*" >&2; }
owner() { psql -X -qtA -v ON_ERROR_STOP=1 "$RT_BENCH_OWNER_URL" "$@"; }
cleanup() {
    owner -c "DROP TABLE IF EXISTS public.bench_scope_plain, public.bench_scope_signed" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log "two tables of 100,000 rows in 10 tenants, one policy each"
owner <<'SQL'
DROP TABLE IF EXISTS public.bench_scope_plain, public.bench_scope_signed;
CREATE TABLE public.bench_scope_plain (id bigint PRIMARY KEY, tenant_id bigint NOT NULL,
    email text, full_name text);
INSERT INTO public.bench_scope_plain
    SELECT g, 1 + g % 10, 'u' || g || '@example.com', 'User ' || g FROM generate_series(1, 100000) g;
CREATE TABLE public.bench_scope_signed (LIKE public.bench_scope_plain INCLUDING ALL);
INSERT INTO public.bench_scope_signed SELECT * FROM public.bench_scope_plain;
ALTER TABLE public.bench_scope_plain ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.bench_scope_plain FORCE ROW LEVEL SECURITY;
ALTER TABLE public.bench_scope_signed ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.bench_scope_signed FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON public.bench_scope_plain
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint);
CREATE POLICY p ON public.bench_scope_signed USING (tenant_id = (SELECT rt_scope.tenant_id()));
GRANT USAGE ON SCHEMA public TO rt_app;
GRANT SELECT ON public.bench_scope_plain, public.bench_scope_signed TO rt_app;
SQL

# Every client enrolls the same key (one per run), so one signed scope serves all.
key=$(openssl rand -hex 32)
tag=$(owner -c "SELECT encode(sha256(decode('$key', 'hex') || convert_to('t:1', 'UTF8')
    || decode('$key', 'hex')), 'hex')")
for t in plain signed; do
    cat >"$WORK/$t.sql" <<SQL
\if :enrolled = 0
SELECT rt_scope.enroll('$key');
\set enrolled 1
\endif
\startpipeline
SELECT set_config('statement_timeout', '5000', true), set_config('transaction_read_only', 'on', true), set_config('app.scope', 't:1.$tag', true), set_config('search_path', 'public', true), set_config('app.tenant_id', '1', true);
SELECT id, email, full_name FROM public.bench_scope_$t WHERE id = 10;
\endpipeline
SQL
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
: >"$WORK/plain.tps"
: >"$WORK/signed.tps"
for ((i = 1; i <= ROUNDS; i++)); do
    for t in plain signed; do
        pgbench -n -M prepared -c 8 -j 2 -T "$DURATION" -D enrolled=0 -f "$WORK/$t.sql" \
            "$RUNTIME_DATABASE_URL" 2>&1 | awk '/^tps/ { print $3; exit }' >>"$WORK/$t.tps"
    done
done
plain=$(median <"$WORK/plain.tps")
signed=$(median <"$WORK/signed.tps")
echo
echo "| measure | result |"
echo "|---|---|"
echo "| tps per run, plain policy | $(tr '\n' ' ' <"$WORK/plain.tps")|"
echo "| tps per run, signed scope | $(tr '\n' ' ' <"$WORK/signed.tps")|"
awk -v p="$plain" -v s="$signed" 'BEGIN { printf "| medians: plain; signed; ratio | %.0f; %.0f; %.2f |\n", p, s, s / p
    printf "| time added per transaction at saturation (1/tps, the machine shared) | ~%.1f us |\n", 1e6 / s - 1e6 / p }'

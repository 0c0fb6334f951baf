/* report: the migration engine's result as data (see report.h). */
#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *report_outcome_name(enum report_outcome o)
{
    static const char *const names[] = {"up_to_date", "ok", "failed", "drift", "dirty"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "failed";
}

bool report_target_bad(const struct report_target *t)
{
    return t->status == REPORT_FAILED || t->status == REPORT_DRIFT ||
           t->status == REPORT_DIRTY;
}

int report_target_applied(struct report_target *t, int version, const char *name, double ms)
{
    struct report_step *a = realloc(t->applied, sizeof *a * (size_t)(t->napplied + 1));
    if (!a)
        return -1;
    t->applied = a;
    a[t->napplied].version = version;
    snprintf(a[t->napplied].name, sizeof a[t->napplied].name, "%s", name);
    a[t->napplied].ms = ms;
    t->napplied++;
    return 0;
}

int report_target_sql(struct report_target *t, int version, const char *name,
                      const char *sql)
{
    char *copy = strdup(sql);
    struct report_sql *s = copy ? realloc(t->sql, sizeof *s * (size_t)(t->nsql + 1)) : NULL;
    if (!s) {
        free(copy);
        return -1;
    }
    t->sql = s;
    s[t->nsql].version = version;
    snprintf(s[t->nsql].name, sizeof s[t->nsql].name, "%s", name);
    s[t->nsql].sql = copy;
    t->nsql++;
    return 0;
}

void report_target_clear(struct report_target *t)
{
    free(t->applied);
    for (int i = 0; i < t->nsql; i++)
        free(t->sql[i].sql);
    free(t->sql);
    memset(t, 0, sizeof *t);
}

void report_error(struct migrate_report *rep, const char *fmt, ...)
{
    if (!rep)
        return;
    struct buf b = BUF_INIT;
    if (rep->errors)
        buf_puts(&b, rep->errors);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    buf_putc(&b, '\n');
    char *text = buf_steal(&b, NULL);
    if (!text)
        return; /* out of memory: the earlier lines stay */
    free(rep->errors);
    rep->errors = text;
}

void report_free(struct migrate_report *rep)
{
    if (!rep)
        return;
    for (size_t i = 0; i < rep->ntargets; i++)
        report_target_clear(&rep->targets[i]);
    free(rep->targets);
    for (size_t i = 0; i < rep->ntenants; i++)
        free(rep->tenants[i].error);
    free(rep->tenants);
    free(rep->by_version);
    free(rep->errors);
    memset(rep, 0, sizeof *rep);
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_ints(struct buf *b, const int *v, int n)
{
    buf_putc(b, '[');
    for (int i = 0; i < n; i++)
        buf_printf(b, "%s%d", i ? "," : "", v[i]);
    buf_putc(b, ']');
}

/* [from+1, ..., head] */
static void json_range(struct buf *b, int from, int head)
{
    buf_putc(b, '[');
    for (int v = from + 1; v <= head; v++)
        buf_printf(b, "%s%d", v > from + 1 ? "," : "", v);
    buf_putc(b, ']');
}

static void json_target(struct buf *b, const struct report_target *t)
{
    buf_puts(b, "{\"target\":");
    buf_json_cstr(b, t->key);
    buf_printf(b, ",\"from\":%d,\"to\":%d,\"status\":\"%s\"", t->from, t->to,
               report_outcome_name(t->status));
    buf_puts(b, ",\"applied\":[");
    for (int i = 0; i < t->napplied; i++) {
        buf_printf(b, "%s{\"version\":%d,\"name\":", i ? "," : "", t->applied[i].version);
        buf_json_cstr(b, t->applied[i].name);
        buf_printf(b, ",\"duration_ms\":%.1f}", t->applied[i].ms);
    }
    buf_putc(b, ']');
    if (t->ndrift) {
        buf_puts(b, ",\"drift\":");
        json_ints(b, t->drift, t->ndrift);
    }
    if (t->nsql) {
        buf_puts(b, ",\"statements\":[");
        for (int i = 0; i < t->nsql; i++) {
            if (i)
                buf_putc(b, ',');
            buf_json_cstr(b, t->sql[i].sql);
        }
        buf_putc(b, ']');
    }
    if (t->skipped_non_tx)
        buf_puts(b, ",\"note\":\"skipped: a step with transaction = false cannot be "
                    "dry-run\"");
    if (t->error[0]) {
        buf_puts(b, ",\"error\":");
        buf_json_cstr(b, t->error);
    }
    buf_putc(b, '}');
}

static void json_run(struct buf *b, const struct migrate_report *rep)
{
    buf_printf(b, "{\"ok\":%s,\"dry_run\":%s,\"duration_ms\":%.0f,\"targets\":[",
               rep->exit_status == 0 ? "true" : "false", rep->dry_run ? "true" : "false",
               rep->duration_ms);
    for (size_t i = 0; i < rep->ntargets; i++) {
        if (i)
            buf_putc(b, ',');
        json_target(b, &rep->targets[i]);
    }
    buf_printf(b,
               "],\"fleet\":{\"total\":%zu,\"visited\":%zu,\"migrated\":%zu,\"failed\":%zu,"
               "\"up_to_date\":%zu},\"failures\":[",
               rep->total, rep->visited, rep->migrated, rep->failed,
               rep->total - rep->migrated - rep->failed);
    bool first = true;
    for (size_t i = 0; i < rep->ntargets; i++) {
        const struct report_target *t = &rep->targets[i];
        if (!report_target_bad(t))
            continue;
        buf_puts(b, first ? "{\"target\":" : ",{\"target\":");
        buf_json_cstr(b, t->key);
        buf_printf(b, ",\"version\":%d,\"error\":", t->failed_version);
        buf_json_cstr(b, t->error);
        buf_putc(b, '}');
        first = false;
    }
    buf_puts(b, "]}\n");
}

static void json_ledger(struct buf *b, const struct report_ledger *l)
{
    if (l->error[0]) {
        buf_puts(b, "{\"error\":");
        buf_json_cstr(b, l->error);
        buf_putc(b, '}');
        return;
    }
    buf_printf(b, "{\"version\":%d,\"head\":%d,\"pending\":", l->version, l->head);
    json_range(b, l->version, l->head);
    buf_puts(b, ",\"drift\":");
    json_ints(b, l->drift, l->ndrift);
    buf_printf(b, ",\"dirty\":%s}", l->dirty ? "true" : "false");
}

static void json_status(struct buf *b, const struct migrate_report *rep)
{
    buf_puts(b, "{\"core\":");
    json_ledger(b, &rep->core);
    buf_puts(b, ",\"shared\":");
    json_ledger(b, &rep->shared);
    if (rep->fleet == REPORT_FLEET_NONE) {
        buf_puts(b, ",\"fleet\":null");
    } else if (rep->fleet == REPORT_FLEET_READ) {
        buf_puts(b, ",\"fleet\":{\"by_version\":{");
        for (size_t i = 0; i < rep->nby_version; i++)
            buf_printf(b, "%s\"%s\":%ld", i ? "," : "", rep->by_version[i].version,
                       rep->by_version[i].n);
        buf_printf(b,
                   "},\"total\":%ld,\"head\":%d,\"pending\":%ld,\"failed\":%ld,"
                   "\"dirty\":%ld,\"drift\":%ld}",
                   rep->fleet_total, rep->head, rep->fleet_pending, rep->fleet_failed,
                   rep->fleet_dirty, rep->fleet_drift);
    }
    if (rep->tenants_listed) {
        buf_puts(b, ",\"tenants\":[");
        for (size_t i = 0; i < rep->ntenants; i++) {
            const struct report_tenant *t = &rep->tenants[i];
            buf_puts(b, i ? ",{\"code\":" : "{\"code\":");
            buf_json_cstr(b, t->code);
            buf_printf(b, ",\"version\":%d,\"status\":", t->version);
            buf_json_cstr(b, t->status);
            buf_puts(b, ",\"error\":");
            buf_json_cstr(b, t->error);
            buf_puts(b, ",\"pending\":");
            json_range(b, t->version, rep->head);
            if (t->has_ledger && t->ledger.error[0]) {
                buf_puts(b, ",\"ledger_error\":");
                buf_json_cstr(b, t->ledger.error);
            } else if (t->has_ledger) {
                buf_printf(b, ",\"ledger_version\":%d,\"drift\":", t->ledger.version);
                json_ints(b, t->ledger.drift, t->ledger.ndrift);
                buf_printf(b, ",\"dirty\":%s", t->ledger.dirty ? "true" : "false");
            }
            buf_putc(b, '}');
        }
        buf_putc(b, ']');
    }
    buf_puts(b, "}\n");
}

void report_json(struct buf *b, const struct migrate_report *rep)
{
    if (rep->kind == REPORT_STATUS)
        json_status(b, rep);
    else
        json_run(b, rep);
}

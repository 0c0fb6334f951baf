/* The SQL guard (see sqlguard.h). The parse tree comes from libpg_query as
 * protobuf, is unpacked with the protobuf-c descriptors libpg_query ships,
 * and is walked generically: every message reached from the statement is
 * visited, so a new node type can hide nothing. */
#include "sqlguard.h"

#include "hash.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

/* Parse trees nest with expressions; PostgreSQL itself stops far earlier
 * than any script needs. Deeper trees are refused, not walked. */
#define MAX_DEPTH 2000

/* Functions no script statement may call, by name (any schema, any case):
 * each changes state that outlives the statement's transaction or reaches
 * other sessions, or runs SQL text the guard cannot see. */
static const char *const refused_functions[] = {
    "set_config",
    /* session-level advisory locks (the _xact_ ones end with the transaction) */
    "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    /* other sessions, the server */
    "pg_notify", "pg_cancel_backend", "pg_terminate_backend", "pg_reload_conf",
    "pg_rotate_logfile", "pg_log_backend_memory_contexts", "pg_stat_clear_snapshot",
    "pg_switch_wal", "pg_promote", "pg_backup_start", "pg_backup_stop",
    "pg_create_restore_point", "pg_logical_emit_message", "pg_import_system_collations",
    /* sequences: setting them, or reading this session's last value */
    "setval", "currval", "lastval",
    /* large objects live outside every tenant's tables */
    "loread", "lowrite",
    /* run SQL text they are given or build (the *_to_xml* family is matched
     * by its infix below) */
    "ts_stat", "ts_rewrite"};

static const char *const refused_prefixes[] = {"lo_",           "dblink",
                                               "pg_stat_reset", "pg_replication_origin",
                                               "pg_create_",    "pg_drop_replication",
                                               "pg_file_",      "pg_read_"};

static bool function_refused(const char *name)
{
    char lower[128];
    size_t n = 0;
    for (; name[n] && n < sizeof lower - 1; n++)
        lower[n] = (char)tolower((unsigned char)name[n]);
    lower[n] = '\0';
    for (size_t i = 0; i < sizeof refused_functions / sizeof refused_functions[0]; i++)
        if (strcmp(lower, refused_functions[i]) == 0)
            return true;
    if (strstr(lower, "_to_xml"))
        return true;
    for (size_t i = 0; i < sizeof refused_prefixes / sizeof refused_prefixes[0]; i++)
        if (strncmp(lower, refused_prefixes[i], strlen(refused_prefixes[i])) == 0)
            return true;
    return false;
}

struct walk {
    struct sqlguard_result *out;
    bool refused;
};

/* Records the first refusal: what was refused, e.g. "BEGIN". */
static void refuse(struct walk *w, const char *what)
{
    if (w->refused)
        return;
    w->refused = true;
    w->out->verdict = SQLGUARD_REFUSED;
    snprintf(w->out->reason, sizeof w->out->reason, "%s", what);
}

/* The one node-specific rule inside a statement: the function a FuncCall
 * names (its last name part: "pg_catalog"."set_config" is set_config). */
static void check_message(struct walk *w, const ProtobufCMessage *m)
{
    if (m->descriptor == &pg_query__func_call__descriptor) {
        const PgQuery__FuncCall *fc = (const PgQuery__FuncCall *)m;
        if (fc->n_funcname == 0)
            return;
        const PgQuery__Node *last = fc->funcname[fc->n_funcname - 1];
        if (last->node_case != PG_QUERY__NODE__NODE_STRING || !last->string->sval)
            return;
        if (function_refused(last->string->sval)) {
            char what[128];
            snprintf(what, sizeof what, "%s()", last->string->sval);
            refuse(w, what);
        }
    } else if (m->descriptor == &pg_query__range_var__descriptor) {
        /* An UPDATE of pg_settings is set_config(..., false) by its rule. */
        const char *rel = ((const PgQuery__RangeVar *)m)->relname;
        if (rel && strcasecmp(rel, "pg_settings") == 0)
            refuse(w, "pg_settings");
    } else if (m->descriptor == &pg_query__select_stmt__descriptor) {
        if (((const PgQuery__SelectStmt *)m)->into_clause)
            refuse(w, "SELECT INTO");
    } else if (m->descriptor == &pg_query__create_table_as_stmt__descriptor ||
               m->descriptor == &pg_query__create_stmt__descriptor) {
        /* Only reachable under the migration policy: temporary tables. */
        const PgQuery__RangeVar *rv =
            m->descriptor == &pg_query__create_stmt__descriptor
                ? ((const PgQuery__CreateStmt *)m)->relation
                : (((const PgQuery__CreateTableAsStmt *)m)->into
                       ? ((const PgQuery__CreateTableAsStmt *)m)->into->rel
                       : NULL);
        if (rv && rv->relpersistence && strcmp(rv->relpersistence, "t") == 0)
            refuse(w, "a temporary table");
    }
}

/* Visits every message below m through the descriptors: repeated message
 * fields, plain message fields and the one set member of a oneof. */
static void walk(struct walk *w, const ProtobufCMessage *m, int depth)
{
    if (w->refused)
        return;
    if (depth > MAX_DEPTH) {
        refuse(w, "a statement nested this deeply");
        return;
    }
    check_message(w, m);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields && !w->refused; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            const ProtobufCMessage *const *items;
            memcpy(&n, base + f->quantifier_offset, sizeof n);
            memcpy(&items, base + f->offset, sizeof items);
            for (size_t k = 0; k < n && !w->refused; k++)
                if (items[k])
                    walk(w, items[k], depth + 1);
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t set;
            memcpy(&set, base + f->quantifier_offset, sizeof set);
            if (set != f->id)
                continue;
        }
        const ProtobufCMessage *sub;
        memcpy(&sub, base + f->offset, sizeof sub);
        if (sub)
            walk(w, sub, depth + 1);
    }
}

static const char *transaction_keyword(PgQuery__TransactionStmtKind k)
{
    switch (k) {
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN: return "BEGIN";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START: return "START TRANSACTION";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT: return "COMMIT";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK: return "ROLLBACK";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT: return "SAVEPOINT";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE: return "RELEASE";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO: return "ROLLBACK TO";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE: return "PREPARE TRANSACTION";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED:
        return "COMMIT PREPARED";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED:
        return "ROLLBACK PREPARED";
    default: return "transaction control";
    }
}

/* The top-level rule of each policy for one statement. */
static void check_statement(struct walk *w, const PgQuery__Node *stmt,
                            enum sqlguard_policy policy)
{
    switch (stmt->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
    case PG_QUERY__NODE__NODE_INSERT_STMT:
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
    case PG_QUERY__NODE__NODE_DELETE_STMT: break;
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
        refuse(w, transaction_keyword(stmt->transaction_stmt->kind));
        return;
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT: {
        const PgQuery__VariableSetStmt *vs = stmt->variable_set_stmt;
        bool reset = vs->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ||
                     vs->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL;
        if (policy == SQLGUARD_REQUEST || !vs->is_local) {
            refuse(w, reset                        ? "RESET"
                      : policy == SQLGUARD_REQUEST ? "SET"
                                                   : "SET without LOCAL");
            return;
        }
        break;
    }
    case PG_QUERY__NODE__NODE_DISCARD_STMT: refuse(w, "DISCARD"); return;
    case PG_QUERY__NODE__NODE_LISTEN_STMT: refuse(w, "LISTEN"); return;
    case PG_QUERY__NODE__NODE_UNLISTEN_STMT: refuse(w, "UNLISTEN"); return;
    case PG_QUERY__NODE__NODE_NOTIFY_STMT: refuse(w, "NOTIFY"); return;
    default:
        if (policy == SQLGUARD_REQUEST) {
            /* The node's name is the protobuf field's, e.g. "CopyStmt". */
            const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
                &pg_query__node__descriptor, (unsigned)stmt->node_case);
            refuse(w, f ? f->name : "this statement");
            return;
        }
        break;
    }
    walk(w, &stmt->base, 0);
}

#ifdef RT_TEST_HOOKS
static bool guard_off(void)
{
    const char *v = getenv("RUNTIME_TEST_SQLGUARD");
    return v && strcmp(v, "off") == 0;
}
#else
static bool guard_off(void)
{
    return false;
}
#endif

bool sqlguard_disabled(void)
{
    return guard_off();
}

static enum sqlguard_verdict check_uncached(const char *sql, enum sqlguard_policy policy,
                                            struct sqlguard_result *out)
{
    PgQueryProtobufParseResult pr = pg_query_parse_protobuf(sql);
    out->verdict = SQLGUARD_OK;
    out->reason[0] = '\0';
    if (pr.error) {
        out->verdict = SQLGUARD_SYNTAX;
        snprintf(out->reason, sizeof out->reason, "%s", pr.error->message);
        pg_query_free_protobuf_parse_result(pr);
        return out->verdict;
    }
    PgQuery__ParseResult *tree = pg_query__parse_result__unpack(
        NULL, pr.parse_tree.len, (const uint8_t *)pr.parse_tree.data);
    pg_query_free_protobuf_parse_result(pr);
    if (!tree) {
        out->verdict = SQLGUARD_REFUSED;
        snprintf(out->reason, sizeof out->reason,
                 "an unreadable parse tree (out of memory?)");
        return out->verdict;
    }
    struct walk w = {out, false};
    if (tree->n_stmts == 0 && policy == SQLGUARD_REQUEST) {
        refuse(&w, "an empty statement");
    } else if (policy == SQLGUARD_REQUEST && tree->n_stmts > 1) {
        char what[64];
        snprintf(what, sizeof what, "%zu statements in one call", tree->n_stmts);
        refuse(&w, what);
    }
    for (size_t i = 0; i < tree->n_stmts && !w.refused; i++)
        if (tree->stmts[i]->stmt)
            check_statement(&w, tree->stmts[i]->stmt, policy);
    pg_query__parse_result__free_unpacked(tree, NULL);
    return out->verdict;
}

/* The request policy's verdicts by statement text: a direct-mapped table,
 * an entry replaced when another text hashes to its slot. */
#define CACHE_SLOTS   1024
#define CACHE_MAX_SQL 8192 /* longer texts are checked every time */

struct cached {
    char *sql; /* owned; NULL: empty slot */
    uint64_t hash;
    struct sqlguard_result result;
};

static struct cached cache[CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool cache_get(const char *sql, uint64_t h, struct sqlguard_result *out)
{
    struct cached *e = &cache[h % CACHE_SLOTS];
    bool hit = false;
    pthread_mutex_lock(&cache_lock);
    if (e->sql && e->hash == h && strcmp(e->sql, sql) == 0) {
        *out = e->result;
        hit = true;
    }
    pthread_mutex_unlock(&cache_lock);
    return hit;
}

static void cache_put(const char *sql, uint64_t h, const struct sqlguard_result *r)
{
    char *copy = strdup(sql);
    if (!copy)
        return; /* not remembered; checked again next time */
    struct cached *e = &cache[h % CACHE_SLOTS];
    pthread_mutex_lock(&cache_lock);
    char *old = e->sql;
    e->sql = copy;
    e->hash = h;
    e->result = *r;
    pthread_mutex_unlock(&cache_lock);
    free(old);
}

enum sqlguard_verdict sqlguard_check(const char *sql, enum sqlguard_policy policy,
                                     struct sqlguard_result *out)
{
    if (guard_off()) {
        out->verdict = SQLGUARD_OK;
        out->reason[0] = '\0';
        return SQLGUARD_OK;
    }
    if (policy != SQLGUARD_REQUEST)
        return check_uncached(sql, policy, out);
    size_t len = strlen(sql);
    if (len > CACHE_MAX_SQL)
        return check_uncached(sql, policy, out);
    uint64_t h = hash_bytes(sql, len);
    if (cache_get(sql, h, out))
        return out->verdict;
    check_uncached(sql, policy, out);
    cache_put(sql, h, out);
    return out->verdict;
}

/* spare: pre-migrated storage for new tenants.
 *
 * Most of a new tenant's provisioning time is its tables being created, so
 * that is done ahead. Spare schemas are migrated to head by the migration
 * engine (migrate_storage: the same steps, ledger and checksums as a
 * tenant's) and renamed into place when a schema tenant is created; a
 * database tenant is cloned from a template database migrated the same way.
 * The tenant migrations still run after either (they find nothing to do and
 * record the tenant's version and fingerprint), then the seeds.
 *
 * Names carry the fingerprint of the migration files they were made from, so
 * storage made from older files is never taken; it is dropped the next time
 * spares are made:
 *   rt_spare_<fp12>_<rand8>        spare schema, in the server's database
 *   rt_tpl_<inst8>_<fp12>          template database
 *   rt_build_<rand8>, rt_tplbuild_<inst8>_<rand8>   being made
 * fp12 is the first 12 hex digits of the fingerprint; inst8 those of the
 * SHA-256 of the directory database's name, so installations sharing a
 * PostgreSQL server keep their own templates. Tenant names are t_<code>, so
 * none of these can be a tenant's. Storage being made or taken is guarded
 * by an advisory lock on its name: concurrent creates never take the same
 * spare, and dropping stale storage never drops storage in use.
 *
 * Every function takes an owner-role connection to the server concerned
 * (rt_owner) and reports problems without raising; callers fall back to
 * empty storage. Uses: migrate_fleet.c (migrate_storage), tenant.c, crypto.c,
 * sql.c and err.c (libpq helpers, errors), config.c. */
#ifndef RT_SPARE_H
#define RT_SPARE_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "config.h"
#include "err.h"
#include "tenant.h"

#define SPARE_NAME_MAX 64

/* Takes a spare schema made from the migrations whose fingerprint is fp and
 * renames it to row's schema (tenant_storage_create with from), in one
 * transaction on c. Returns 1 when one was taken; 0 when none was left or
 * taking one failed, with nothing changed (the caller makes the schema
 * itself; err says why, "" when there was simply none). */
int spare_schema_take(PGconn *c, const struct tenant_row *row, const char *fp,
                      struct rt_err *err);

/* The template database of fingerprint fp for the installation whose
 * directory database is directory_db. Returns 1 when it exists on c's server
 * (its name in out), 0 when not, -1 on error. */
int spare_template_find(PGconn *c, const char *directory_db, const char *fp,
                        char out[SPARE_NAME_MAX]);

/* What spare_refill makes. */
struct spare_want {
    int schemas;    /* spare schemas to keep (0: none, none dropped) */
    bool template;  /* keep the template database current */
    const char *fp; /* the fingerprint at head (migrate_tenant_head) */
    const char *directory_db;
};

/* Makes spare schemas on server (c is connected to it) until there are
 * want->schemas made from the current files, builds the template database
 * when want->template and it is missing, and drops stale or abandoned ones of
 * the kinds asked for. Goes on after a failure; returns 0, or -1 with the
 * first error in err. *made counts what was built. */
int spare_refill(const struct config *cfg, PGconn *c, const char *server,
                 const struct spare_want *want, int *made, struct rt_err *err);

/* Drops every spare schema and template database of the installation on c's
 * server that is not in use. Returns the number dropped, or -1 with err. */
int spare_drop_all(PGconn *c, const char *directory_db, struct rt_err *err);

#endif

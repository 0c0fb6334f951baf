/* migrate: the migration engine and `runtime migrate`.
 *
 * Discovers and validates step files (through vm.c), keeps a ledger per
 * target (core, shared, each schema or database tenant), locks each target
 * with a session advisory lock on its own connection, runs each step in its
 * own transaction together with its ledger row, mirrors every tenant's state
 * in the directory, and fans tenants out over worker threads. See
 * docs/MIGRATIONS.md for the behaviour and the command line.
 *
 * Uses: vm.c (steps, the `m` object), crypto.c (fingerprints), config.c,
 * buf.c, log.c; libpq directly (migrations use dedicated connections, not the
 * request pools). */
#ifndef RT_MIGRATE_H
#define RT_MIGRATE_H

#include "config.h"

/* `runtime migrate ...`: argv[0] is "migrate". Returns the exit status. */
int migrate_main(int argc, char **argv);

#endif

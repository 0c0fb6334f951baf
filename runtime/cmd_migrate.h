/* cmd_migrate: `runtime migrate`, the command line of the migration engine.
 *
 * Parses the arguments (getopt_long), runs migrate_run, and prints its
 * report: text, or with --json the one JSON document of report_json; the
 * request's errors and the fleet's progress go to stderr (a progress bar
 * when stderr is a terminal). See docs/MIGRATIONS.md.
 *
 * Uses: cli.c, migrate.c (the engine), report.c, config.c, tenant.c (codes). */
#ifndef RT_CMD_MIGRATE_H
#define RT_CMD_MIGRATE_H

#include <stdbool.h>
#include <stdio.h>

#include "report.h"

/* argv[0] is "migrate". Returns the exit status. */
int cmd_migrate(int argc, char **argv);

/* Prints rep as `runtime migrate` does: the report to out (JSON with json),
 * the errors and failures to err. tty: err is a terminal (failed tenants
 * are listed at the end instead of as they happen). */
void cmd_migrate_print(const struct migrate_report *rep, bool json, bool tty, FILE *out,
                       FILE *err);

#endif

/* cmd_tenant: `runtime tenant`, the command line of provisioning.
 *
 * Parses the arguments (cli.h), calls the provisioning engine (provision.c)
 * and prints its results; `list` and `show` print the directory (tenant.c's
 * table) as text or JSON. Uses: cli.c, provision.c, tenant.c, sql.c,
 * config.c. */
#ifndef RT_CMD_TENANT_H
#define RT_CMD_TENANT_H

/* `runtime tenant ...`: argv[0] is "tenant". Returns the exit status. */
int cmd_tenant_main(int argc, char **argv);

#endif

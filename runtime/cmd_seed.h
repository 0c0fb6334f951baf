/* cmd_seed: `runtime seed`, the command line of the seeding engine.
 *
 * Parses the arguments (cli.h), runs seed_run (seed.c) and prints each
 * tenant's outcome as text or JSON. Uses: cli.c, seed.c, tenant.c,
 * config.c. */
#ifndef RT_CMD_SEED_H
#define RT_CMD_SEED_H

/* `runtime seed ...`: argv[0] is "seed". Returns the exit status. */
int cmd_seed_main(int argc, char **argv);

#endif

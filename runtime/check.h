/* check: the offline script tools, `runtime check` and `runtime routes`.
 *
 * Both read the config (for scripts.dir and the limits) and the script
 * tree, and never connect to a database. `check` compiles every script,
 * validates the route tables (vm_scripts_load) and the migration and seed
 * steps (vm_steps_load), and prints each problem as file:line: message;
 * `routes` lists the routes with their scope, permission and source file.
 *
 * Uses: config.c, scripts.c, steps.c, bindings.c, lua/rt_tenant.c (the
 * module list of route files), auth.c (key check), buf.c. */
#ifndef RT_CHECK_H
#define RT_CHECK_H

/* `runtime check [--config PATH] [--scripts DIR] [--json]`: 0 when every
 * script is valid, 1 when one is not (or the config cannot be read), 2 on
 * bad usage. argv[0] is "check". */
int check_main(int argc, char **argv);

/* `runtime routes [--config PATH] [--scripts DIR] [--json]`: 0, or 1 when
 * the scripts do not load, 2 on bad usage. argv[0] is "routes". */
int routes_main(int argc, char **argv);

#endif

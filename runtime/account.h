/* account: `runtime user create`, platform users from the command line.
 *
 * The first platform superuser cannot come from the HTTP API (nobody could
 * authorise it), so it comes from here: the password is read from standard
 * input or $RUNTIME_USER_PASSWORD, never from an argument (which other users
 * of the machine can see) and never a default. Uses: crypto.c, db.c,
 * config.c. */
#ifndef RT_ACCOUNT_H
#define RT_ACCOUNT_H

/* `runtime user ...`: argv[0] is "user". Returns the exit status. */
int account_main(int argc, char **argv);

#endif

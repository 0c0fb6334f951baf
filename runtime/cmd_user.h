/* cmd_user: `runtime user create`, platform users from the command line.
 *
 * The password is read from standard input or $RUNTIME_USER_PASSWORD, never
 * from an argument (which other users of the machine can see) and never a
 * default; account.c makes the user. Uses: cli.c, account.c, crypto.h (the
 * password limit), config.c. */
#ifndef RT_CMD_USER_H
#define RT_CMD_USER_H

/* `runtime user ...`: argv[0] is "user". Returns the exit status. */
int cmd_user_main(int argc, char **argv);

#endif

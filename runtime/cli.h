/* cli: how every subcommand reads its arguments.
 *
 * One loop over getopt_long in "return in order" mode (optstring starting
 * "-:"), with opterr = 0 so the subcommand words its own complaint: each
 * bad argument comes back as '?' with the whole offending word (unknown
 * option, missing value, "--", a lone "-"), and each other word as 1, in the
 * order given. Every subcommand reports a bad word the same way:
 * "runtime <command>: unknown or incomplete option '<word>'", its usage,
 * exit status 2 (cli_bad). Uses: getopt_long (glibc). */
#ifndef RT_CLI_H
#define RT_CLI_H

#include <getopt.h>
#include <stdio.h>

/* Begins parsing argv[1..argc-1] (argv[0] names the command). Call once
 * before the first cli_next. */
void cli_start(void);

/* The next argument. Returns -1 at the end; 1 with *word a non-option word;
 * '?' with *word the offending word; else the option's val, with its value
 * (if it takes one) in optarg. shortopts must start with "-:". */
int cli_next(int argc, char **argv, const char *shortopts, const struct option *longopts,
             const char **word);

/* Prints "runtime <command>: unknown or incomplete option '<word>'" and the
 * usage to stderr. Returns 2, the exit status. */
int cli_bad(const char *command, const char *word, void (*usage)(FILE *));

#endif

/* cli: how every subcommand reads its arguments (see cli.h). */
#include "cli.h"

#include <string.h>

void cli_start(void)
{
    optind = 0; /* glibc: start over, from argv[1] */
    opterr = 0;
}

int cli_next(int argc, char **argv, const char *shortopts, const struct option *longopts,
             const char **word)
{
    /* getopt_long moves optind past a word once it is done with it; inside
     * a cluster of short options ("-xy") it stays on the word. */
    int at = optind > 0 ? optind : 1;
    int ch = getopt_long(argc, argv, shortopts, longopts, NULL);

    *word = NULL;
    if (ch == -1) {
        /* "--" ends getopt's options; nothing here takes it. */
        if (optind > 1 && optind <= argc && strcmp(argv[optind - 1], "--") == 0) {
            *word = "--";
            return '?';
        }
        return -1;
    }
    if (ch == 1) {
        *word = optarg;
        /* A lone "-" is a word to getopt, an option to every subcommand. */
        return optarg[0] == '-' ? '?' : 1;
    }
    if (ch == '?' || ch == ':') {
        *word = argv[optind > at ? optind - 1 : at];
        return '?';
    }
    return ch;
}

int cli_bad(const char *command, const char *word, void (*usage)(FILE *))
{
    fprintf(stderr, "runtime %s: unknown or incomplete option '%s'\n", command, word);
    usage(stderr);
    return 2;
}

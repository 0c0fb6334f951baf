/* Unit tests for cli.c: every subcommand's argument loop. Words come back in
 * order; a bad argument comes back as '?' with the whole word the user typed,
 * which is what "unknown or incomplete option '%s'" quotes. */
#include "cli.h"

#include "check.h"

#include <stddef.h>

enum { O_JSON = 256, O_CONFIG };

static const struct option longopts[] = {
    {"json", no_argument, NULL, O_JSON},
    {"config", required_argument, NULL, O_CONFIG},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses words (NULL-terminated, words[0] the command) and writes what
 * came back into out as "w:<word> " / "o:<val>=<value> " / "?:<word> ", up
 * to and including the first '?'. */
static void parse(const char *const *words, char *out, size_t cap)
{
    char copies[16][64], *argv[17];
    int argc = 0, ch;
    const char *word;
    size_t n = 0;

    for (; words[argc] && argc < 16; argc++) {
        snprintf(copies[argc], sizeof copies[argc], "%s", words[argc]);
        argv[argc] = copies[argc];
    }
    argv[argc] = NULL;
    out[0] = '\0';
    cli_start();
    while ((ch = cli_next(argc, argv, "-:h", longopts, &word)) != -1) {
        if (ch == 1)
            n += (size_t)snprintf(out + n, cap - n, "w:%s ", word);
        else if (ch == '?')
            n += (size_t)snprintf(out + n, cap - n, "?:%s ", word);
        else
            n += (size_t)snprintf(out + n, cap - n, "o:%d=%s ", ch, optarg ? optarg : "");
        if (ch == '?' || n >= cap)
            return;
    }
}

#define PARSE(want, ...)                                         \
    do {                                                         \
        const char *const words_[] = {"cmd", __VA_ARGS__, NULL}; \
        char out_[256];                                          \
        parse(words_, out_, sizeof out_);                        \
        CHECK_STR(out_, want);                                   \
    } while (0)

int main(void)
{
    /* Words and options in the order given, values taken from the next word
     * or after '='. */
    PARSE("w:create o:256= w:acme o:257=x.lua ", "create", "--json", "acme", "--config",
          "x.lua");
    PARSE("o:257=y.lua w:a ", "--config=y.lua", "a");
    /* A value is the next word whatever it looks like (as before getopt). */
    PARSE("o:257=--json ", "--config", "--json");
    /* Unknown, incomplete, or given a value it does not take. */
    PARSE("w:a ?:--bogus ", "a", "--bogus", "b");
    PARSE("w:a ?:--config ", "a", "--config");
    PARSE("?:--json=1 ", "--json=1");
    /* Short options: -h is known, anything else names its whole word, also
     * inside a cluster. */
    PARSE("o:104= ", "-h");
    PARSE("?:-x ", "-x");
    PARSE("o:104= ?:-hx ", "-hx");
    PARSE("?:-xh ", "-xh");
    /* "--" and a lone "-" are options no subcommand takes. */
    PARSE("w:a ?:-- ", "a", "--", "b");
    PARSE("?:- ", "-");
    /* Parsing again starts over. */
    PARSE("w:b ", "b");
    return check_done();
}

/* sqlguard: what a script's SQL may do, decided by PostgreSQL's own parser.
 *
 * Every statement a script sends (rt.db for requests, m:exec/s:exec for
 * migration and seed steps) is parsed with libpg_query, PostgreSQL 15's
 * grammar, and the parse tree is checked; nothing is matched as text, so
 * quoting, U&"..." escapes, schema qualification, comments and nesting (a
 * function in FROM, inside a CTE or a subquery) all reach the same node.
 *
 * Policies (docs/SECURITY.md):
 *   SQLGUARD_REQUEST    exactly one SELECT, INSERT, UPDATE or DELETE (with any
 *                       WITH of those); no SELECT INTO; no call of a function
 *                       that changes session state or reaches outside the
 *                       request (set_config, session advisory locks,
 *                       pg_notify, large objects, sequences' setval/currval/
 *                       lastval, signalling backends, query_to_xml and
 *                       friends that run SQL text, ...).
 *   SQLGUARD_MIGRATION  any number of statements, run as the owner, except
 *                       transaction control (the engine owns the transaction),
 *                       session-level SET/RESET, DISCARD, LISTEN/UNLISTEN and
 *                       the same functions as above (a step must leave
 *                       nothing on the connection for the next target).
 *
 * Verdicts of the request policy are remembered by statement text (scripts
 * send the same few statements over and over), in a bounded table shared by
 * all threads. Thread-safe. Uses: libpg_query, hash.h. */
#ifndef RT_SQLGUARD_H
#define RT_SQLGUARD_H

#include <stdbool.h>

enum sqlguard_policy {
    SQLGUARD_REQUEST,
    SQLGUARD_MIGRATION,
};

enum sqlguard_verdict {
    SQLGUARD_OK,
    SQLGUARD_REFUSED, /* valid SQL that the policy refuses: a misuse */
    SQLGUARD_SYNTAX,  /* PostgreSQL's parser rejects it (SQLSTATE 42601) */
};

struct sqlguard_result {
    enum sqlguard_verdict verdict;
    /* Refused: what, e.g. "BEGIN", "set_config()", "2 statements".
     * Syntax: the parser's message, e.g. `syntax error at or near "FORM"`. */
    char reason[256];
};

/* Checks sql under policy; fills out and returns its verdict. */
enum sqlguard_verdict sqlguard_check(const char *sql, enum sqlguard_policy policy,
                                     struct sqlguard_result *out);

/* Test builds only (-DRT_TEST_NO_SQLGUARD=ON): true when the guard was
 * compiled out, so the database's own privileges can be shown to hold
 * without it. Always false in a normal build. */
bool sqlguard_disabled(void);

#endif

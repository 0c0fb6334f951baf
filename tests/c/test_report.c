/* test_report: the JSON of `runtime migrate --json`, built from a report
 * filled by hand (report.c is pure: no database, no engine). */
#include "check.h"
#include "report.h"

#include <stdlib.h>
#include <string.h>

static char *json_of(const struct migrate_report *rep)
{
    struct buf b = BUF_INIT;
    report_json(&b, rep);
    return buf_steal(&b, NULL);
}

static void test_run(void)
{
    struct migrate_report rep;
    struct report_target t[3];

    memset(&rep, 0, sizeof rep);
    memset(t, 0, sizeof t);
    snprintf(t[0].key, sizeof t[0].key, "core");
    t[0].status = REPORT_UP_TO_DATE;
    t[0].from = t[0].to = 3;
    snprintf(t[1].key, sizeof t[1].key, "shared");
    t[1].status = REPORT_OK;
    t[1].from = 1;
    t[1].to = 2;
    CHECK(report_target_applied(&t[1], 2, "add \"phone\"", 1.25) == 0);
    CHECK(report_target_sql(&t[1], 2, "add \"phone\"", "ALTER TABLE x") == 0);
    t[1].skipped_non_tx = true;
    snprintf(t[2].key, sizeof t[2].key, "tenant:t01");
    t[2].status = REPORT_DRIFT;
    t[2].from = t[2].to = 2;
    t[2].failed_version = 1;
    t[2].ndrift = 2;
    t[2].drift[0] = 1;
    t[2].drift[1] = 2;
    snprintf(t[2].error, sizeof t[2].error, "drift: 0001_a");
    rep.kind = REPORT_RUN;
    rep.exit_status = 1;
    rep.body = true;
    rep.dry_run = true;
    rep.duration_ms = 41.6;
    rep.targets = malloc(sizeof t);
    CHECK(rep.targets != NULL);
    if (!rep.targets)
        return;
    memcpy(rep.targets, t, sizeof t);
    rep.ntargets = 3;
    rep.fleet_asked = true;
    rep.total = 5;
    rep.visited = 1;
    rep.failed = 1;

    char *j = json_of(&rep);
    CHECK_STR(j,
              "{\"ok\":false,\"dry_run\":true,\"duration_ms\":42,\"targets\":["
              "{\"target\":\"core\",\"from\":3,\"to\":3,\"status\":\"up_to_date\","
              "\"applied\":[]},"
              "{\"target\":\"shared\",\"from\":1,\"to\":2,\"status\":\"ok\",\"applied\":["
              "{\"version\":2,\"name\":\"add \\\"phone\\\"\",\"duration_ms\":1.2}],"
              "\"statements\":[\"ALTER TABLE x\"],\"note\":\"skipped: a step with "
              "transaction = false cannot be dry-run\"},"
              "{\"target\":\"tenant:t01\",\"from\":2,\"to\":2,\"status\":\"drift\","
              "\"applied\":[],\"drift\":[1,2],\"error\":\"drift: 0001_a\"}],"
              "\"fleet\":{\"total\":5,\"visited\":1,\"migrated\":0,\"failed\":1,"
              "\"up_to_date\":4},"
              "\"failures\":[{\"target\":\"tenant:t01\",\"version\":1,"
              "\"error\":\"drift: 0001_a\"}]}\n");
    free(j);
    report_free(&rep);
    CHECK(rep.targets == NULL && rep.ntargets == 0);
}

static void test_status(void)
{
    struct migrate_report rep;

    memset(&rep, 0, sizeof rep);
    rep.kind = REPORT_STATUS;
    rep.body = true;
    rep.core.version = 2;
    rep.core.head = 3;
    snprintf(rep.shared.error, sizeof rep.shared.error, "cannot connect");
    rep.fleet = REPORT_FLEET_READ;
    rep.head = 3;
    rep.by_version = calloc(1, sizeof *rep.by_version);
    CHECK(rep.by_version != NULL);
    if (!rep.by_version)
        return;
    snprintf(rep.by_version[0].version, sizeof rep.by_version[0].version, "3");
    rep.by_version[0].n = 2;
    rep.nby_version = 1;
    rep.fleet_total = 2;
    rep.tenants_listed = true;
    rep.tenants = calloc(1, sizeof *rep.tenants);
    CHECK(rep.tenants != NULL);
    if (!rep.tenants)
        return;
    rep.ntenants = 1;
    snprintf(rep.tenants[0].code, sizeof rep.tenants[0].code, "t01");
    rep.tenants[0].version = 1;
    snprintf(rep.tenants[0].status, sizeof rep.tenants[0].status, "ok");
    rep.tenants[0].has_ledger = true;
    rep.tenants[0].ledger.version = 1;
    rep.tenants[0].ledger.dirty = true;

    char *j = json_of(&rep);
    CHECK_STR(j, "{\"core\":{\"version\":2,\"head\":3,\"pending\":[3],\"drift\":[],"
                 "\"dirty\":false},"
                 "\"shared\":{\"error\":\"cannot connect\"},"
                 "\"fleet\":{\"by_version\":{\"3\":2},\"total\":2,\"head\":3,\"pending\":0,"
                 "\"failed\":0,\"dirty\":0,\"drift\":0},"
                 "\"tenants\":[{\"code\":\"t01\",\"version\":1,\"status\":\"ok\","
                 "\"error\":null,\"pending\":[2,3],\"ledger_version\":1,\"drift\":[],"
                 "\"dirty\":true}]}\n");
    free(j);

    /* No directory yet: fleet is null and no tenants are listed. */
    report_free(&rep);
    rep.kind = REPORT_STATUS;
    rep.body = true;
    rep.fleet = REPORT_FLEET_NONE;
    j = json_of(&rep);
    CHECK_STR(j, "{\"core\":{\"version\":0,\"head\":0,\"pending\":[],\"drift\":[],"
                 "\"dirty\":false},\"shared\":{\"version\":0,\"head\":0,\"pending\":[],"
                 "\"drift\":[],\"dirty\":false},\"fleet\":null}\n");
    free(j);
    report_free(&rep);
}

static void test_errors(void)
{
    struct migrate_report rep;

    memset(&rep, 0, sizeof rep);
    report_error(&rep, "runtime migrate: %s", "one");
    report_error(&rep, "runtime migrate: %d", 2);
    CHECK_STR(rep.errors, "runtime migrate: one\nruntime migrate: 2\n");
    report_error(NULL, "ignored");
    report_free(&rep);
    CHECK(rep.errors == NULL);
    report_free(NULL);
    CHECK_STR(report_outcome_name(REPORT_DIRTY), "dirty");
}

int main(void)
{
    test_run();
    test_status();
    test_errors();
    return check_done();
}

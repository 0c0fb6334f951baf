/* auth_module: the auth module object (see auth.h): auth_new builds the
 * token keys (auth.c), the pool and the first state (auth_revoke.c) and
 * starts the reload thread; auth_free drops all of it. It sits on top of the
 * module's other files, so none of them calls up into it. */
#include "auth.h"
#include "auth_int.h"

#include "ticker.h"

#include <stdio.h>
#include <stdlib.h>

static void reload_tick(void *arg)
{
    auth_reload(arg);
}

struct auth *auth_new(const struct config *cfg, bool poll, struct rt_err *err)
{
    struct auth *a = calloc(1, sizeof *a);

    if (!a) {
        rt_err_set(err, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    pthread_mutex_init(&a->mu, NULL);
    for (int i = 0; i < TOKEN_SLOTS; i++)
        pthread_mutex_init(&a->tokens[i].mu, NULL);
    if (!(a->keys = auth_keys_load(cfg, err))) {
        auth_free(a);
        return NULL;
    }
    struct db_pool_options po = {
        .conninfo = cfg->database_url,
        .name = "auth",
        .max_size = 2,
        .checkout_timeout_ms = cfg->database_checkout_timeout_ms,
        .connect_timeout_s = cfg->database_connect_timeout,
        .statement_timeout_ms = cfg->database_statement_timeout_ms,
    };
    a->pool = db_pool_new(&po);
    a->st = calloc(1, sizeof *a->st);
    if (!a->pool || !a->st) {
        rt_err_set(err, "out of memory");
        auth_free(a);
        return NULL;
    }
    auth_reload(a);
    if (poll &&
        !(a->ticker = ticker_start(cfg->auth_revocation_refresh_ms, reload_tick, a))) {
        rt_err_set(err, "cannot start the revocation reloader");
        auth_free(a);
        return NULL;
    }
    return a;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    ticker_stop(a->ticker);
    auth_perms_drop_locked(a, -1, NULL);
    auth_state_free(a->st);
    free(a->st);
    free(a->local);
    db_pool_free(a->pool);
    crypto_jwt_keys_free(a->keys);
    for (int i = 0; i < TOKEN_SLOTS; i++) {
        free(a->tokens[i].token);
        pthread_mutex_destroy(&a->tokens[i].mu);
    }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

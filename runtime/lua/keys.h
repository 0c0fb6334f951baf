/* keys: the registry keys (LUA_REGISTRYINDEX) that more than one file uses.
 *
 * A key used by one file only stays a private #define in that file (the
 * sandbox's, rt.auth's binding, rt.db's request context). Every value here
 * is written in one place and read in the others named beside it.
 *
 * Uses: nothing (string constants only). */
#ifndef RT_LUA_KEYS_H
#define RT_LUA_KEYS_H

/* Light userdata: the worker state (struct vm_worker) of a request state;
 * set by dispatch.c, read by its rt.routes, rt.scripts_status and event
 * lookup. Absent in scratch and step states. */
#define RT_KEY_VM "rt.vm"

/* Light userdata: the server's config (const struct config *), borrowed;
 * set by dispatch.c for worker states, read by rt.auth and rt.tenant (which
 * answer "not available here" without it). */
#define RT_KEY_CONFIG "rt.config"

/* Functions: rt.json's encoder and decoder, set by rt_json.c when it opens,
 * for the prelude (luastate.c), dispatch.c, rt.db and rt.tenant. */
#define RT_KEY_JSON_ENCODE "rt.json.encode"
#define RT_KEY_JSON_DECODE "rt.json.decode"

/* Integer: the nesting limit of rt.json, set by luastate.c before rt.json
 * opens. */
#define RT_KEY_JSON_MAX_DEPTH "rt.json.max_depth"

/* Table: the environment record of the request running ({env =, files =,
 * events =}); set and cleared by dispatch.c around each request. */
#define RT_KEY_ENV_RECORD "rt.env.record"

/* Table: req.tenant of the request running (nil without a tenant); set by
 * dispatch.c, read by rt.events. */
#define RT_KEY_ENV_TENANT "rt.env.tenant"

/* String: the id of the request running; set by dispatch.c, read by rt.log. */
#define RT_KEY_REQUEST_ID "rt.request_id"

/* Function: name -> the event handlers of the current environment; set by
 * dispatch.c, called by rt.events.emit. */
#define RT_KEY_EVENTS_HANDLERS "rt.events.handlers"

/* Function: debug.traceback, kept by luastate.c for trusted code (step runs
 * in steps.c) while the debug library stays out of reach of scripts. */
#define RT_KEY_TRACEBACK "rt.traceback"

/* Table: rt module name -> its context (light userdata), as handed to the
 * state builder in its module list; set by sandbox.c, read by a binding
 * through sandbox_module_ctx. */
#define RT_KEY_MODULE_CTX "rt.module.ctx"

#endif

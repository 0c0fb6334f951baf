/* rt.json: JSON for scripts.
 *
 *   json.encode(value)   -> string; raises on values JSON cannot hold
 *                           (functions, NaN, infinities, nesting deeper
 *                           than the limit, which also stops cycles)
 *   json.decode(string)  -> value | nil, message; arrays carry the array
 *                           marker (so [] encodes back as []), integers
 *                           that fit 64 bits are Lua integers
 *   json.array([t])      -> t (or a new table) marked as an array, so an
 *                           empty one encodes as [] rather than {}
 *   json.null            -> JSON null (the same value as rt.null)
 *
 * Encoding is our own so integers are exact to 64 bits and floats print
 * the shortest text that reads back the same (lua-cjson 2.1 rounds every
 * number to 14 digits, which corrupts large ids). A table is an array when
 * it carries the array marker or its keys are exactly 1..n; otherwise an
 * object (integer keys become strings). Decoding is our own too (RFC 8259,
 * strict: no NaN, comments, trailing commas or invalid UTF-8 in strings):
 * lua-cjson 2.1 marks no arrays, so an empty one came back as {}, and it
 * reads every number as a float; objects with repeated keys keep the last
 * value.
 *
 * The depth limit is the registry integer RT_KEY_JSON_MAX_DEPTH (lua/keys.h) at open time:
 * the deepest value the decoder accepts. The encoder accepts
 * RT_JSON_ENVELOPE_DEPTH levels more, so that any value the decoder accepted
 * (a request body, a json/jsonb column, and so anything stored from a body)
 * still encodes inside the response around it: a list of rows of objects,
 * an object holding that list. Strings holding NUL (\u0000) are refused by
 * the decoder: PostgreSQL text and jsonb cannot store them.
 * The encoder and the raw decoder (which raises on bad input) are left in
 * the registry as RT_KEY_JSON_ENCODE / RT_KEY_JSON_DECODE for other bindings
 * and the prelude; the array metatable is the registry entry
 * "rt.json.array".
 *
 * Uses: buf.c, lua/limits.c. */
#ifndef RT_LUA_RT_JSON_H
#define RT_LUA_RT_JSON_H

#include <lua.h>

#define RT_JSON_ARRAY_MT "rt.json.array"

/* Levels of response structure the encoder allows around a decoded value. */
#define RT_JSON_ENVELOPE_DEPTH 16

int luaopen_rt_json(lua_State *L);

#endif

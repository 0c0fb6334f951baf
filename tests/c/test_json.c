/* Unit tests for lua/rt_json.c's decoder, driven from Lua in a plain state:
 * arrays keep their mark (so [] encodes back as []), integers stay
 * integers, strings and escapes, strict syntax, the depth limit. */
#include "lua/rt_json.h"

#include "check.h"

#include <lauxlib.h>
#include <lualib.h>

/* Runs a chunk with `json` (rt.json) as a global; it returns true or an
 * error. */
static void run(lua_State *L, const char *name, const char *code)
{
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", name, lua_tostring(L, -1));
        lua_pop(L, 1);
        CHECK(0);
        return;
    }
    CHECK(1);
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushinteger(L, 8);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.json.max_depth");
    luaopen_rt_json(L);
    lua_setglobal(L, "json");

    run(L, "arrays",
        "local v = json.decode('{\"a\": [], \"o\": {}, \"n\": [[], [1]]}')\n"
        "assert(json.encode(v.a) == '[]' and json.encode(v.o) == '{}')\n"
        "assert(json.encode(v.n) == '[[],[1]]')\n"
        "assert(json.encode(json.decode('[]')) == '[]')\n"
        "assert(#v.n == 2 and v.n[2][1] == 1)\n"
        "assert(getmetatable(v.a) == false) -- the shared mark is hidden\n");
    run(L, "numbers",
        "local v = json.decode('[0, -7, 9007199254740993, 9223372036854775807, "
        "-9223372036854775808, 9223372036854775808, 1.5, 1e2, -0, 2E-3]')\n"
        "assert(math.type(v[1]) == 'integer' and v[2] == -7)\n"
        "assert(v[3] == 9007199254740993 and math.type(v[3]) == 'integer')\n"
        "assert(v[4] == math.maxinteger and v[5] == math.mininteger)\n"
        "assert(math.type(v[6]) == 'float' and v[6] == 2^63)\n"
        "assert(v[7] == 1.5 and math.type(v[8]) == 'float' and v[8] == 100)\n"
        "assert(math.type(v[9]) == 'float' and 1/v[9] < 0 and v[10] == 0.002)\n"
        "assert(json.encode(json.decode('{\"id\": 9007199254740993}')) == "
        "'{\"id\":9007199254740993}')\n");
    run(L, "strings",
        "local v = "
        "json.decode([[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\"]])\n"
        "assert(v == 'a\"b\\\\c/d\\b\\f\\n\\r\\t\\u{e9}\\u{20ac}\\u{1f600}', v)\n"
        "assert(json.decode('\"plain\"') == 'plain')\n"
        "assert(json.decode('\"a\\0b\"') == nil) -- a control character\n");
    /* RFC 8259 text is UTF-8, and the encoder replaces invalid bytes with
     * U+FFFD: a decoded string it would change must not be accepted. */
    run(L, "invalid UTF-8 in a string is refused",
        "for _, bad in ipairs({ '\"\\255\"', '\"a\\195\"', '\"\\192\\128\"', "
        "'\"\\237\\160\\128\"', '\"\\244\\144\\128\\128\"', "
        "'\"\\226\\130\"', '{\"\\254\": 1}', '\"esc\\\\n\\255\"' }) do\n"
        "  local v, err = json.decode(bad)\n"
        "  assert(v == nil and err:find('invalid UTF-8', 1, true), bad)\n"
        "end\n"
        "local ok = '\"caf\\195\\169 \\226\\130\\172 \\240\\159\\152\\128\"'\n"
        "assert(json.encode(json.decode(ok)) == ok)\n"
        "assert(json.decode('[\"\\\\n\\195\\169\"]')[1] == '\\n\\195\\169')\n");
    run(L, "literals",
        "local v = json.decode(' {\"t\": true, \"f\": false, \"z\": null} ')\n"
        "assert(v.t == true and v.f == false and v.z == json.null)\n"
        "assert(json.decode('{\"k\": 1, \"k\": 2}').k == 2)\n");
    run(L, "errors",
        "for _, bad in ipairs({ '', ' ', '[1,]', '{\"a\":1,}', '[1 2]', '{a:1}', "
        "'01', '1.', '.5', '-', '1e', 'NaN', 'Infinity', '-Infinity', '0x10', '1e400', "
        "'\"abc', '\"\\\\x\"', '\"\\\\ud800\"', '\"\\\\udc00x\"', '[', '{\"a\"', "
        "'{\"a\" 1}', 'tru', 'nul', '[] []', '// c\\n1' }) do\n"
        "  local v, err = json.decode(bad)\n"
        "  assert(v == nil and err:find('^rt.json.decode: '), bad)\n"
        "end\n"
        "local _, err = json.decode('[1, x]')\n"
        "assert(err:find('at byte 5', 1, true), err)\n");
    run(L, "depth",
        "assert(json.decode(('['):rep(8) .. (']'):rep(8)))\n"
        "local v, err = json.decode(('['):rep(9) .. (']'):rep(9))\n"
        "assert(v == nil and err:find('nesting deeper than 8'), err)\n");
    /* What the decoder accepted (a body, then a stored jsonb value) must
     * encode inside the rows and objects of the response that returns it. */
    run(L, "decoded_value_encodes_in_a_response",
        "local deep = json.decode(('['):rep(8) .. (']'):rep(8))\n"
        "local body = json.encode({ items = { { id = 1, doc = deep } } })\n"
        "assert(body:find(('['):rep(8) .. (']'):rep(8), 1, true), body)\n"
        "local cycle = {}\n"
        "cycle[1] = cycle\n"
        "assert(not pcall(json.encode, cycle))\n");
    run(L, "nul_escape_refused",
        "local v, err = json.decode('{\"name\": \"a\\\\u0000b\"}')\n"
        "assert(v == nil and err:find('NUL', 1, true), tostring(err))\n"
        "v, err = json.decode('\"\\\\u0000\"')\n"
        "assert(v == nil and err:find('NUL', 1, true), tostring(err))\n"
        "assert(json.decode('\"\\\\u0001\"') == '\\1')\n");
    lua_close(L);
    return check_done();
}

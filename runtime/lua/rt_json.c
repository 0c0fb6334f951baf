/* rt.json: JSON encoder and decoder (see rt_json.h). */
#include "lua/rt_json.h"

#include "buf.h"
#include "lua/keys.h"
#include "lua/limits.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define ENCODER_MT "rt.json.encoder"

/* How often (in values) the encoder checks the request's limits: its output
 * lives outside the Lua state until the end, and a wide shared structure can
 * take long without a single Lua instruction. */
#define CHECK_EVERY 1024

/* The encoder's state lives in a userdata so that an error raised halfway
 * (bad value, too deep, a limit) still frees the output buffer when the
 * userdata is collected. */
struct encoder {
    struct buf b;
    int max;            /* deepest nesting */
    unsigned count;     /* values encoded */
    const void *path[]; /* the tables being encoded, outermost first */
};

static int encoder_gc(lua_State *L)
{
    struct encoder *e = luaL_checkudata(L, 1, ENCODER_MT);
    buf_free(&e->b);
    return 0;
}

static void encode_value(lua_State *L, struct encoder *e, int idx, int depth);

static void encode_number(lua_State *L, struct buf *b, int idx)
{
    char num[32];

    if (lua_isinteger(L, idx)) {
        buf_put_int(b, (long long)lua_tointeger(L, idx));
        return;
    }
    double d = lua_tonumber(L, idx);
    if (!isfinite(d))
        luaL_error(L, "rt.json.encode: cannot encode NaN or infinity");
    /* The shortest of 15..17 significant digits that reads back exactly. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, d);
        if (prec == 17 || strtod(num, NULL) == d)
            break;
    }
    buf_puts(b, num);
}

/* Number of elements if the table at idx is an array (keys exactly 1..n),
 * else -1. */
static lua_Integer array_length(lua_State *L, int idx)
{
    lua_Integer count = 0, max = 0;

    if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, RT_JSON_ARRAY_MT);
        int marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (marked)
            return (lua_Integer)lua_rawlen(L, idx);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return -1;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k > max)
            max = k;
        count++;
    }
    return count > 0 && count == max ? count : -1;
}

static void encode_table(lua_State *L, struct encoder *e, int idx, int depth)
{
    struct buf *b = &e->b;
    const void *self = lua_topointer(L, idx);

    if (depth > e->max)
        luaL_error(L, "rt.json.encode: nesting deeper than %d", e->max);
    for (int i = 0; i < depth - 1; i++)
        if (e->path[i] == self)
            luaL_error(L, "rt.json.encode: a table contains itself (a cycle)");
    e->path[depth - 1] = self;
    luaL_checkstack(L, 6, "rt.json.encode: too deep");
    lua_Integer n = array_length(L, idx);
    if (n >= 0) {
        buf_putc(b, '[');
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1)
                buf_putc(b, ',');
            lua_rawgeti(L, idx, i);
            encode_value(L, e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        buf_putc(b, ']');
        return;
    }
    bool first = true;
    buf_putc(b, '{');
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (!first)
            buf_putc(b, ',');
        first = false;
        if (lua_type(L, -2) == LUA_TSTRING) {
            size_t len;
            const char *k = lua_tolstring(L, -2, &len);
            buf_json_str(b, k, len);
        } else if (lua_isinteger(L, -2)) {
            buf_putc(b, '"');
            buf_put_int(b, (long long)lua_tointeger(L, -2));
            buf_putc(b, '"');
        } else {
            luaL_error(L, "rt.json.encode: cannot encode a table key of type %s",
                       luaL_typename(L, -2));
        }
        buf_putc(b, ':');
        encode_value(L, e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    buf_putc(b, '}');
}

static void encode_value(lua_State *L, struct encoder *e, int idx, int depth)
{
    struct buf *b = &e->b;
    size_t len;
    const char *s;

    if (++e->count % CHECK_EVERY == 0)
        limits_check(L, b->len, "rt.json.encode");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: buf_puts(b, "null"); break;
    case LUA_TBOOLEAN: buf_puts(b, lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNUMBER: encode_number(L, b, idx); break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        buf_json_str(b, s, len);
        break;
    case LUA_TTABLE: encode_table(L, e, idx, depth); break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            buf_puts(b, "null");
            break;
        }
        /* fall through */
    default: luaL_error(L, "rt.json.encode: cannot encode a %s", luaL_typename(L, idx));
    }
    if (b->failed)
        luaL_error(L, "rt.json.encode: out of memory");
}

static int l_encode(lua_State *L)
{
    int max = (int)lua_tointeger(L, lua_upvalueindex(1));

    luaL_checkany(L, 1);
    lua_settop(L, 1);
    struct encoder *e =
        lua_newuserdatauv(L, sizeof *e + (size_t)max * sizeof e->path[0], 0);
    e->b = (struct buf)BUF_INIT;
    e->max = max;
    e->count = 0;
    luaL_setmetatable(L, ENCODER_MT);
    encode_value(L, e, 1, 1);
    lua_pushlstring(L, buf_cstr(&e->b), e->b.len);
    buf_free(&e->b);
    return 1;
}

/* ---- decoding ------------------------------------------------------------------ */

/* The decoder reads a Lua string (borrowed: it stays on the stack for the
 * whole call) and builds the value on the stack; every error is raised, with
 * the byte position, and leaves nothing allocated outside the Lua state. */
struct decoder {
    const char *s, *p, *end;
    int max;        /* deepest nesting */
    unsigned count; /* values decoded, for the limits check */
};

static void decode_value(lua_State *L, struct decoder *d, int depth);

static int decode_fail(lua_State *L, struct decoder *d, const char *what)
{
    return luaL_error(L, "rt.json.decode: %s at byte %d", what, (int)(d->p - d->s) + 1);
}

static void skip_ws(struct decoder *d)
{
    while (d->p < d->end &&
           (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static bool is_digit(const struct decoder *d, const char *p)
{
    return p < d->end && *p >= '0' && *p <= '9';
}

/* A number as JSON writes it. Integers (no fraction, no exponent) that fit
 * 64 bits become Lua integers, so ids stay exact; the rest, and "-0", are
 * floats. Stack: [...] -> [..., number]. */
static void decode_number(lua_State *L, struct decoder *d)
{
    const char *start = d->p, *q = d->p;
    bool neg = q < d->end && *q == '-', integral = true;

    if (neg)
        q++;
    if (!is_digit(d, q))
        decode_fail(L, d, "invalid number");
    if (*q == '0')
        q++;
    else
        while (is_digit(d, q))
            q++;
    if (q < d->end && *q == '.') {
        integral = false;
        if (!is_digit(d, ++q))
            decode_fail(L, d, "invalid number");
        while (is_digit(d, q))
            q++;
    }
    if (q < d->end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < d->end && (*q == '+' || *q == '-'))
            q++;
        if (!is_digit(d, q))
            decode_fail(L, d, "invalid number");
        while (is_digit(d, q))
            q++;
    }
    if (integral && !(neg && q - start == 2 && start[1] == '0')) {
        uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        bool fits = true;
        for (const char *c = start + neg; c < q && fits; c++) {
            unsigned digit = (unsigned)(*c - '0');
            fits = v <= (limit - digit) / 10;
            v = v * 10 + digit;
        }
        if (fits) {
            d->p = q;
            lua_pushinteger(L, neg ? (lua_Integer)(0 - v) : (lua_Integer)v);
            return;
        }
    }
    /* The grammar above is a subset of strtod's, so strtod stops at q; the
     * string is NUL-terminated (a Lua string), so it cannot read past it. */
    char *stop;
    errno = 0;
    double v = strtod(start, &stop);
    if (stop != q)
        decode_fail(L, d, "invalid number");
    if (errno == ERANGE && isinf(v))
        decode_fail(L, d, "number out of range");
    d->p = q;
    lua_pushnumber(L, v);
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* Appends code point cp as UTF-8. */
static void add_utf8(luaL_Buffer *b, unsigned long cp)
{
    char u[4];
    int n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    luaL_addlstring(b, u, (size_t)n);
}

/* A string; d->p is on its opening quote. Stack: [...] -> [..., string]. */
static void decode_string(lua_State *L, struct decoder *d)
{
    const char *q = ++d->p;

    /* Most strings have no escapes: pushed straight from the input. Bytes
     * from 0x80 up must form valid UTF-8 (RFC 8259 section 8.1): the
     * encoder would replace anything else, so it would not round-trip. */
    while (q < d->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) {
        size_t n = (unsigned char)*q < 0x80 ? 1 : buf_utf8_len(q, (size_t)(d->end - q));
        if (n == 0)
            break;
        q += n;
    }
    if (q < d->end && *q == '"') {
        lua_pushlstring(L, d->p, (size_t)(q - d->p));
        d->p = q + 1;
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, d->p, (size_t)(q - d->p));
    d->p = q;
    for (;;) {
        if (d->p >= d->end)
            decode_fail(L, d, "unterminated string");
        unsigned char c = (unsigned char)*d->p;
        if (c == '"')
            break;
        if (c < 0x20)
            decode_fail(L, d, "control character in a string");
        if (c >= 0x80) {
            size_t n = buf_utf8_len(d->p, (size_t)(d->end - d->p));
            if (n == 0)
                decode_fail(L, d, "invalid UTF-8 in a string");
            luaL_addlstring(&b, d->p, n);
            d->p += n;
            continue;
        }
        if (c != '\\') {
            luaL_addchar(&b, (char)c);
            d->p++;
            continue;
        }
        if (d->p + 1 >= d->end)
            decode_fail(L, d, "unterminated string");
        char e = d->p[1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            luaL_addchar(&b, out[simple - "\"\\/bfnrt"]);
            d->p += 2;
            continue;
        }
        if (e != 'u')
            decode_fail(L, d, "invalid escape");
        int hi = d->end - d->p >= 6 ? hex4(d->p + 2) : -1;
        if (hi < 0)
            decode_fail(L, d, "invalid \\u escape");
        unsigned long cp = (unsigned long)hi;
        /* PostgreSQL text and jsonb cannot hold NUL, and C strings end at
         * it: refused here, as a client error, rather than failing (or
         * being cut short) wherever the string goes next. */
        if (hi == 0)
            decode_fail(L, d, "\\u0000 (NUL) is not supported in strings");
        if (hi >= 0xdc00 && hi <= 0xdfff)
            decode_fail(L, d, "invalid \\u escape (a lone low surrogate)");
        if (hi >= 0xd800 && hi <= 0xdbff) {
            int lo = d->end - d->p >= 12 && d->p[6] == '\\' && d->p[7] == 'u'
                         ? hex4(d->p + 8)
                         : -1;
            if (lo < 0xdc00 || lo > 0xdfff)
                decode_fail(L, d, "invalid \\u escape (a lone high surrogate)");
            cp = 0x10000 + (((unsigned long)hi - 0xd800) << 10) +
                 ((unsigned long)lo - 0xdc00);
            d->p += 6;
        }
        add_utf8(&b, cp);
        d->p += 6;
    }
    d->p++; /* the closing quote */
    luaL_pushresult(&b);
}

/* An array: marked with the array metatable, so [] stays [] when encoded.
 * Stack: [...] -> [..., table]. */
static void decode_array(lua_State *L, struct decoder *d, int depth)
{
    lua_Integer n = 0;

    d->p++;
    lua_newtable(L);
    luaL_setmetatable(L, RT_JSON_ARRAY_MT);
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        return;
    }
    for (;;) {
        decode_value(L, d, depth + 1);
        lua_rawseti(L, -2, ++n);
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            return;
        }
        decode_fail(L, d, "expected ',' or ']'");
    }
}

/* An object; a repeated key keeps its last value. Stack: [...] -> [..., table]. */
static void decode_object(lua_State *L, struct decoder *d, int depth)
{
    d->p++;
    lua_newtable(L);
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return;
    }
    for (;;) {
        skip_ws(d);
        if (d->p >= d->end || *d->p != '"')
            decode_fail(L, d, "expected a string key");
        decode_string(L, d);
        skip_ws(d);
        if (d->p >= d->end || *d->p != ':')
            decode_fail(L, d, "expected ':'");
        d->p++;
        decode_value(L, d, depth + 1);
        lua_rawset(L, -3);
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            return;
        }
        decode_fail(L, d, "expected ',' or '}'");
    }
}

static bool literal(struct decoder *d, const char *word, size_t len)
{
    if ((size_t)(d->end - d->p) < len || memcmp(d->p, word, len) != 0)
        return false;
    d->p += len;
    return true;
}

/* Any value. Stack: [...] -> [..., value]. */
static void decode_value(lua_State *L, struct decoder *d, int depth)
{
    if (++d->count % CHECK_EVERY == 0)
        limits_check(L, 0, "rt.json.decode");
    skip_ws(d);
    if (d->p >= d->end)
        decode_fail(L, d, "expected a value");
    switch (*d->p) {
    case '{':
    case '[':
        if (depth > d->max)
            luaL_error(L, "rt.json.decode: nesting deeper than %d", d->max);
        luaL_checkstack(L, 4, "rt.json.decode: too deep");
        if (*d->p == '{')
            decode_object(L, d, depth);
        else
            decode_array(L, d, depth);
        return;
    case '"': decode_string(L, d); return;
    case 't':
        if (literal(d, "true", 4)) {
            lua_pushboolean(L, 1);
            return;
        }
        break;
    case 'f':
        if (literal(d, "false", 5)) {
            lua_pushboolean(L, 0);
            return;
        }
        break;
    case 'n':
        if (literal(d, "null", 4)) {
            lua_pushlightuserdata(L, NULL); /* rt.null */
            return;
        }
        break;
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) {
            decode_number(L, d);
            return;
        }
    }
    decode_fail(L, d, "expected a value");
}

/* The raw decoder: decode(string) -> value; raises on bad input. */
static int l_decode_raw(lua_State *L)
{
    size_t len;
    struct decoder d;

    d.s = d.p = luaL_checklstring(L, 1, &len);
    d.end = d.s + len;
    d.max = (int)lua_tointeger(L, lua_upvalueindex(1));
    d.count = 0;
    lua_settop(L, 1);
    decode_value(L, &d, 1);
    skip_ws(&d);
    if (d.p != d.end)
        decode_fail(L, &d, "unexpected text after the value");
    return 1;
}

static int l_decode(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2; /* nil, message */
    }
    return 1;
}

static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, RT_JSON_ARRAY_MT);
    return 1;
}

int luaopen_rt_json(lua_State *L)
{
    lua_Integer depth = 64;

    if (lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_JSON_MAX_DEPTH) == LUA_TNUMBER)
        depth = lua_tointeger(L, -1);
    lua_pop(L, 1);

    if (luaL_newmetatable(L, ENCODER_MT)) {
        lua_pushcfunction(L, encoder_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    /* Shared by every array (rt.db row lists too): hidden from getmetatable,
     * so no script can give them all a __gc or an __index. */
    if (luaL_newmetatable(L, RT_JSON_ARRAY_MT)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);

    lua_createtable(L, 0, 4);
    lua_pushinteger(L, depth + RT_JSON_ENVELOPE_DEPTH);
    lua_pushcclosure(L, l_encode, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_JSON_ENCODE);
    lua_setfield(L, -2, "encode");

    lua_pushinteger(L, depth);
    lua_pushcclosure(L, l_decode_raw, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_JSON_DECODE);
    lua_pushcclosure(L, l_decode, 1);
    lua_setfield(L, -2, "decode");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");

    lua_pushcfunction(L, l_array);
    lua_setfield(L, -2, "array");
    return 1;
}

#!/usr/bin/env bash
# Checks the layering of runtime/ (docs/ARCHITECTURE.md, "Layers"): every
# file of runtime/ is named in runtime/layers.txt, no file includes a header
# of a layer above its own, the includes between modules (x.c + x.h) make no
# cycle, and only the Lua host, config and the bindings include Lua headers.
# A call needs a declaration, and a declaration comes from an include, so the
# include graph is the call graph's bound. Prints each problem; exit 1 if any.
#
#   tests/layers.sh [REPO]
set -euo pipefail

repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}
src=$repo/runtime
map=$src/layers.txt
rc=0

problem() {
    printf 'layers: %s\n' "$*" >&2
    rc=1
}

# layers.txt: "LEVEL NAME: module module ...", LEVEL 1 = the top. A module is
# a path under runtime/ without .c/.h; "lua/*" stands for every binding.
declare -A level name_of
lua_ok=()
while IFS= read -r line; do
    line=${line%%#*}
    [[ $line =~ ^[[:space:]]*([0-9]+)[[:space:]]+([a-z-]+):(.*)$ ]] || continue
    lv=${BASH_REMATCH[1]} nm=${BASH_REMATCH[2]}
    for m in ${BASH_REMATCH[3]}; do
        level[$m]=$lv
        name_of[$m]=$nm
        [[ $nm == lua-host || $nm == bindings || $m == config ]] && lua_ok+=("$m")
    done
done <"$map"

# Every binding not named on its own takes the layer of "lua/*".
if [[ -n ${level['lua/*']:-} ]]; then
    for f in "$src"/lua/*.[ch]; do
        m=${f#"$src"/}
        m=${m%.[ch]}
        [[ -n ${level[$m]:-} ]] || { level[$m]=${level['lua/*']} name_of[$m]=${name_of['lua/*']}; }
    done
fi

# runtime-relative path -> its module ("" when the map has none)
module_of() {
    local m=${1%.[ch]}
    [[ -n ${level[$m]:-} ]] && printf '%s' "$m"
    return 0
}

# The headers of runtime/ that bring in Lua's, directly or through another.
lua_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](lua|lauxlib|lualib)\.h[>"]'
declare -A lua_header
mapfile -t headers < <(find "$src" -name '*.h' | sort)
changed=1
while ((changed)); do
    changed=0
    for h in "${headers[@]}"; do
        rel=${h#"$src"/}
        [[ -n ${lua_header[$rel]:-} ]] && continue
        hit=0
        grep -qE "$lua_re" "$h" && hit=1
        while IFS= read -r inc; do
            [[ -n ${lua_header[$inc]:-} || -n ${lua_header[$(dirname "$rel")/$inc]:-} ]] && hit=1
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$h")
        if ((hit)); then
            lua_header[$rel]=1
            changed=1
        fi
    done
done

edges=$(mktemp)
trap 'rm -f "$edges"' EXIT

while IFS= read -r f; do
    rel=${f#"$src"/}
    from=$(module_of "$rel")
    if [[ -z $from ]]; then
        problem "runtime/$rel is in no layer of runtime/layers.txt"
        continue
    fi
    while IFS= read -r inc; do
        # Includes are relative to runtime/ (the include folder) or to the file.
        target=$inc
        [[ -f $src/$target ]] || target=$(dirname "$rel")/$inc
        [[ -f $src/$target ]] || continue # generated (prelude.lua.h)
        to=$(module_of "$target")
        [[ -n $to ]] || continue # reported as a file of its own
        [[ $to == "$from" ]] && continue
        if ((level[$to] < level[$from])); then
            problem "runtime/$rel (${name_of[$from]}) includes $inc (${name_of[$to]}, a layer above)"
        fi
        printf '%s %s\n' "$from" "$to" >>"$edges"
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    uses_lua=0
    grep -qE "$lua_re" "$f" && uses_lua=1
    while IFS= read -r inc; do
        [[ -n ${lua_header[$inc]:-} || -n ${lua_header[$(dirname "$rel")/$inc]:-} ]] && uses_lua=1
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    if ((uses_lua)); then
        ok=0
        for m in "${lua_ok[@]}"; do
            # shellcheck disable=SC2053 # "lua/*" is a pattern
            [[ $from == $m ]] && ok=1
        done
        ((ok)) || problem "runtime/$rel includes Lua headers (itself or through a header) but is not in the Lua host, the bindings or config"
    fi
done < <(find "$src" -name '*.[ch]' | sort)

if ! out=$(tsort "$edges" 2>&1 >/dev/null) || [[ -n $out ]]; then
    problem "the includes between modules make a cycle through: $(printf '%s\n' "$out" |
        sed -n 's/^tsort: \([^ ]*\)$/\1/p' | sort -u | tr '\n' ' ')"
fi

((rc == 0)) && printf 'layers: ok (%s files)\n' "$(find "$src" -name '*.[ch]' | wc -l)"
exit "$rc"

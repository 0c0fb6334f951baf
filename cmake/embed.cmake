# Turns a file into a C array: cmake -DIN=... -DOUT=... -DNAME=... -P embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
file(WRITE "${OUT}.tmp"
  "/* Generated from ${IN} by cmake/embed.cmake. Do not edit. */\n"
  "static const char ${NAME}[] = {${hex}};\n")
file(RENAME "${OUT}.tmp" "${OUT}")

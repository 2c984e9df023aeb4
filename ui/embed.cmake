# embed.cmake - turn the explorer page's files (ui/*.html, *.css, *.js, *.svg) into one C
# source, so digestmapd serves them from its own binary with no file to install beside it
# (docs/ui.md). Run at build time by receiver/CMakeLists.txt:
#   cmake -DDIR=<ui folder> -DOUT=<generated .c> -P embed.cmake
# Each file becomes a byte array and an entry of dm_ui_files[] (receiver/dm_ui.h): its name,
# bytes, length and an ETag (the first 16 hex digits of its SHA-256). Only plain names are
# taken (a-z, 0-9, '.', '-', '_'), so the table holds no path a request could abuse.
cmake_minimum_required(VERSION 3.25)
if(NOT DIR OR NOT OUT)
  message(FATAL_ERROR "embed.cmake: DIR and OUT are required")
endif()
file(GLOB files RELATIVE ${DIR} ${DIR}/*.html ${DIR}/*.css ${DIR}/*.js ${DIR}/*.svg)
list(SORT files)
if(NOT files)
  message(FATAL_ERROR "embed.cmake: no page files in ${DIR}")
endif()
set(arrays "")
set(entries "")
set(i 0)
foreach(name ${files})
  if(NOT name MATCHES "^[a-z0-9][a-z0-9._-]*$")
    message(FATAL_ERROR "embed.cmake: ${name}: names are a-z, 0-9, '.', '-' and '_'")
  endif()
  file(READ ${DIR}/${name} hex HEX)
  string(LENGTH "${hex}" n)
  if(n EQUAL 0)
    message(FATAL_ERROR "embed.cmake: ${name} is empty")
  endif()
  math(EXPR len "${n} / 2")
  file(SHA256 ${DIR}/${name} sum)
  string(SUBSTRING "${sum}" 0 16 etag)
  # 32 bytes a line: "0x3c,0x21,..."
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(REGEX REPLACE "((0x..,){32})" "\\1\n    " hex "${hex}")
  string(APPEND arrays "static const unsigned char file${i}[] = {\n    ${hex}\n};\n")
  string(APPEND entries "    {\"${name}\", file${i}, ${len}, \"\\\"${etag}\\\"\"},\n")
  math(EXPR i "${i} + 1")
endforeach()
set(text "/* Generated from ui/ by ui/embed.cmake at build time: do not edit. */\n")
string(APPEND text "#include \"dm_ui.h\"\n\n${arrays}\n")
string(APPEND text "const dm_ui_file dm_ui_files[] = {\n${entries}};\n")
string(APPEND text "const size_t dm_ui_nfiles = sizeof dm_ui_files / sizeof dm_ui_files[0];\n")
file(WRITE ${OUT} "${text}")

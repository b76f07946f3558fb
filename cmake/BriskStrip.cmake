# cmake -P BriskStrip.cmake: makes the installed forms of the libraries from the staged ones.
#
#   -DSTAGE=<dir>        holds libbrisk.so.X.Y.Z (full debug info) and libbrisk.a
#   -DSHARED=<name>      libbrisk.so.X.Y.Z
#   -DOUT=<dir>          receives libbrisk.so.X.Y.Z (stripped, with a .gnu_debuglink),
#                        libbrisk.a (debug info stripped) and
#                        debug/.build-id/<xx>/<rest>.debug (the shared library's debug info)
#   -DOBJCOPY=, -DSTRIP=, -DREADELF=   the binutils to use
#
# The debug file goes where gdb, valgrind and abidiff look for it by build id
# (<debug dir>/.build-id/ab/cdef....debug, /usr/lib/debug on Debian), and the debuglink names it
# for tools that look beside the library.
foreach(_var STAGE SHARED OUT OBJCOPY STRIP READELF)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "BriskStrip.cmake: -D${_var}=... is missing")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE _rc ERROR_VARIABLE _err OUTPUT_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    string(REPLACE ";" " " _cmd "${ARGV}")
    message(FATAL_ERROR "BriskStrip.cmake: `${_cmd}` failed (${_rc}): ${_err}")
  endif()
  set(RUN_OUTPUT "${_out}" PARENT_SCOPE)
endfunction()

run("${READELF}" -n "${STAGE}/${SHARED}")
if(NOT RUN_OUTPUT MATCHES "Build ID: ([0-9a-f][0-9a-f])([0-9a-f]+)")
  message(FATAL_ERROR "BriskStrip.cmake: ${STAGE}/${SHARED} has no build id (link with --build-id)")
endif()
set(_debug_dir "${OUT}/debug/.build-id/${CMAKE_MATCH_1}")
set(_debug_file "${_debug_dir}/${CMAKE_MATCH_2}.debug")

file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${_debug_dir}")
# The debug info, compressed; then the library without it (and without the symbols nothing
# links against), pointing to it.
run("${OBJCOPY}" --only-keep-debug --compress-debug-sections=zlib "${STAGE}/${SHARED}" "${_debug_file}")
run("${STRIP}" --strip-unneeded --remove-section=.comment --remove-section=.note
    -o "${OUT}/${SHARED}" "${STAGE}/${SHARED}")
# --add-gnu-debuglink reads the debug file from the current directory, by its name.
get_filename_component(_debug_name "${_debug_file}" NAME)
execute_process(COMMAND "${OBJCOPY}" "--add-gnu-debuglink=${_debug_name}" "${OUT}/${SHARED}"
  WORKING_DIRECTORY "${_debug_dir}" RESULT_VARIABLE _rc ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "BriskStrip.cmake: adding the debuglink failed: ${_err}")
endif()
file(CHMOD "${OUT}/${SHARED}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(CHMOD "${_debug_file}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
# A static library keeps its symbols (the linker needs them) and loses its debug info and the
# LLVM bitcode Rust's objects carry for cross-language LTO (.llvmbc, .llvmcmd: 80% of the
# archive, which no C linker reads).
run("${STRIP}" --strip-debug --remove-section=.llvmbc --remove-section=.llvmcmd
    --enable-deterministic-archives -o "${OUT}/libbrisk.a" "${STAGE}/libbrisk.a")
file(CHMOD "${OUT}/libbrisk.a" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# Builds libbrisk with cargo and exposes it to CMake as IMPORTED targets:
#
#   brisk::brisk          the shared library (libbrisk.so.X.Y.Z, soname libbrisk.so.X)
#   brisk::brisk_static   the static library (libbrisk.a) with the native libraries it needs
#
# cargo builds into ${BRISK_CARGO_TARGET_DIR} (inside the CMake build tree, so a CMake build
# never fights with `cargo test` over ./target). The results are then staged in
# ${BRISK_STAGE_DIR} under their installed names (libbrisk.so.X.Y.Z, libbrisk.so.X and
# libbrisk.so symlinks, libbrisk.a): programs linked in the build tree find libbrisk.so.X
# there through their build RPATH, exactly as they will find it once installed.
#
# The cargo step always runs (cargo itself decides, in well under a second, whether anything
# changed); the staged copies are only touched when their content changes, so nothing relinks
# needlessly.
#
# The library is built with full debug info (types and parameters, not only line tables): it
# does not change the code, and it is what the ABI check (scripts/abi) and the debug package
# need. What gets installed is made from the staged copies by cmake/BriskStrip.cmake into
# ${BRISK_DIST_DIR}: the shared library stripped (with a debuglink), its debug info in a
# separate file under debug/.build-id/, and the static library without debug info.

find_program(CARGO_EXECUTABLE cargo
  HINTS "$ENV{CARGO_HOME}/bin" "$ENV{HOME}/.cargo/bin"
  DOC "cargo, to build the Rust library")
if(NOT CARGO_EXECUTABLE)
  message(FATAL_ERROR "brisk: cargo not found. Install a Rust toolchain (https://rustup.rs) or "
                      "pass -DCARGO_EXECUTABLE=/path/to/cargo.")
endif()

set(BRISK_CARGO_TARGET_DIR "${CMAKE_BINARY_DIR}/cargo" CACHE PATH
  "cargo --target-dir for the CMake build (kept apart from ./target)")
set(BRISK_CARGO_FLAGS "--locked" CACHE STRING
  "Extra flags for `cargo rustc` (a ;-list), e.g. --offline")
set(BRISK_STAGE_DIR "${CMAKE_BINARY_DIR}/lib")

# What `cargo rustc --release --lib -- --print native-static-libs` prints on Linux
# ("-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"), less -lc which every C link has anyway, and
# less -lgcc_s: the C compiler driver links the unwinder by itself (libgcc_s as needed, or
# libgcc_eh with -static, where an explicit -lgcc_s fails: there is no static libgcc_s).
# Whoever links libbrisk.a needs these; brisk.pc's Libs.private and brisk::brisk_static carry
# them. Re-check them when dependencies change (the `install` test links a static consumer,
# also with -static).
set(BRISK_STATIC_NATIVE_LIBS util rt pthread m dl)

set(_cargo_out "${BRISK_CARGO_TARGET_DIR}/release")
set(BRISK_SHARED_FILE "libbrisk.so.${BRISK_VERSION}")
set(BRISK_SONAME "libbrisk.so.${BRISK_SOVERSION}")

# `cargo rustc --crate-type`, not `cargo build`: with the rlib among the crate types (Cargo.toml,
# for Rust users) cargo silently skips the release profile's LTO (rust-lang/cargo#9672), which
# costs the C API 5-8% more instructions per command than the same code LTO'd.
add_custom_target(brisk_cargo ALL
  COMMAND "${CMAKE_COMMAND}" -E env CARGO_PROFILE_RELEASE_DEBUG=full
          "${CARGO_EXECUTABLE}" rustc --release --lib --crate-type cdylib,staticlib
          --manifest-path "${PROJECT_SOURCE_DIR}/Cargo.toml"
          --target-dir "${BRISK_CARGO_TARGET_DIR}" ${BRISK_CARGO_FLAGS}
  COMMAND "${CMAKE_COMMAND}" -E copy_if_different
          "${_cargo_out}/libbrisk.so" "${BRISK_STAGE_DIR}/${BRISK_SHARED_FILE}"
  COMMAND "${CMAKE_COMMAND}" -E copy_if_different
          "${_cargo_out}/libbrisk.a" "${BRISK_STAGE_DIR}/libbrisk.a"
  BYPRODUCTS
    "${_cargo_out}/libbrisk.so" "${_cargo_out}/libbrisk.a"
    "${BRISK_STAGE_DIR}/${BRISK_SHARED_FILE}" "${BRISK_STAGE_DIR}/libbrisk.a"
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
  USES_TERMINAL
  COMMENT "cargo rustc --release: libbrisk.so and libbrisk.a"
  VERBATIM)

# The installed forms, remade whenever a staged library changes.
find_program(BRISK_READELF NAMES readelf "${CMAKE_READELF}" REQUIRED)
set(BRISK_DIST_DIR "${BRISK_STAGE_DIR}/dist")
add_custom_command(
  OUTPUT "${BRISK_DIST_DIR}/${BRISK_SHARED_FILE}" "${BRISK_DIST_DIR}/libbrisk.a"
  COMMAND "${CMAKE_COMMAND}" -DSTAGE=${BRISK_STAGE_DIR} -DSHARED=${BRISK_SHARED_FILE}
          -DOUT=${BRISK_DIST_DIR} -DOBJCOPY=${CMAKE_OBJCOPY} -DSTRIP=${CMAKE_STRIP}
          -DREADELF=${BRISK_READELF} -P "${CMAKE_CURRENT_LIST_DIR}/BriskStrip.cmake"
  DEPENDS "${BRISK_STAGE_DIR}/${BRISK_SHARED_FILE}" "${BRISK_STAGE_DIR}/libbrisk.a"
          "${CMAKE_CURRENT_LIST_DIR}/BriskStrip.cmake"
  COMMENT "stripping libbrisk.so (debug info to a separate file) and libbrisk.a"
  VERBATIM)
add_custom_target(brisk_dist ALL
  DEPENDS "${BRISK_DIST_DIR}/${BRISK_SHARED_FILE}" "${BRISK_DIST_DIR}/libbrisk.a")
add_dependencies(brisk_dist brisk_cargo)

# The symlinks never change (only what they point to does): make them once.
file(MAKE_DIRECTORY "${BRISK_STAGE_DIR}")
file(CREATE_LINK "${BRISK_SHARED_FILE}" "${BRISK_STAGE_DIR}/${BRISK_SONAME}" SYMBOLIC)
file(CREATE_LINK "${BRISK_SONAME}" "${BRISK_STAGE_DIR}/libbrisk.so" SYMBOLIC)

add_library(brisk::brisk SHARED IMPORTED GLOBAL)
set_target_properties(brisk::brisk PROPERTIES
  IMPORTED_LOCATION "${BRISK_STAGE_DIR}/${BRISK_SHARED_FILE}"
  IMPORTED_SONAME "${BRISK_SONAME}"
  INTERFACE_INCLUDE_DIRECTORIES "${PROJECT_SOURCE_DIR}/include")
add_dependencies(brisk::brisk brisk_cargo)

add_library(brisk::brisk_static STATIC IMPORTED GLOBAL)
set_target_properties(brisk::brisk_static PROPERTIES
  IMPORTED_LOCATION "${BRISK_STAGE_DIR}/libbrisk.a"
  IMPORTED_LINK_INTERFACE_LANGUAGES C
  INTERFACE_LINK_LIBRARIES "${BRISK_STATIC_NATIVE_LIBS}"
  INTERFACE_INCLUDE_DIRECTORIES "${PROJECT_SOURCE_DIR}/include")
add_dependencies(brisk::brisk_static brisk_cargo)

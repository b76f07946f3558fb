# Reads the crate's version from Cargo.toml (the single source of truth) into
# BRISK_VERSION, BRISK_VERSION_MAJOR/MINOR/PATCH and BRISK_SOVERSION, and re-runs the
# configure step whenever Cargo.toml changes.

function(brisk_read_cargo_version manifest)
  file(READ "${manifest}" _toml)
  # Only the [package] table: dependencies carry `version = ...` too.
  string(REGEX MATCH "\\[package\\][^[]*" _package "${_toml}")
  string(REGEX MATCH "\nversion[ \t]*=[ \t]*\"([0-9]+)\\.([0-9]+)\\.([0-9]+)([^\"]*)\"" _line
               "${_package}")
  if(NOT _line)
    message(FATAL_ERROR "brisk: no `version = \"X.Y.Z\"` in the [package] table of ${manifest}")
  endif()
  set(BRISK_VERSION_MAJOR "${CMAKE_MATCH_1}" PARENT_SCOPE)
  set(BRISK_VERSION_MINOR "${CMAKE_MATCH_2}" PARENT_SCOPE)
  set(BRISK_VERSION_PATCH "${CMAKE_MATCH_3}" PARENT_SCOPE)
  set(BRISK_VERSION "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}.${CMAKE_MATCH_3}" PARENT_SCOPE)
  # The soname's version (build.rs sets the same): the ABI line. From 1.0 on it is the major
  # version (libbrisk.so.1); while 0.x every minor release may break the ABI, so it is 0.<minor>
  # (libbrisk.so.0.1). See the README, "ABI policy".
  if(CMAKE_MATCH_1 EQUAL 0)
    set(BRISK_SOVERSION "0.${CMAKE_MATCH_2}" PARENT_SCOPE)
  else()
    set(BRISK_SOVERSION "${CMAKE_MATCH_1}" PARENT_SCOPE)
  endif()
  # The description, for brisk.pc.
  if(_package MATCHES "\ndescription[ \t]*=[ \t]*\"([^\"]*)\"")
    set(BRISK_DESCRIPTION "${CMAKE_MATCH_1}" PARENT_SCOPE)
  else()
    set(BRISK_DESCRIPTION "A Redis and Valkey client" PARENT_SCOPE)
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${manifest}")
endfunction()

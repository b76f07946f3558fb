# Installation layout (relative to the prefix given to `cmake --install . --prefix P`), by
# component (the Debian packages of cmake/BriskPackage.cmake are made of them):
#
#   runtime:     lib/libbrisk.so.X.Y.Z (stripped), lib/libbrisk.so.<soversion> -> ...
#   development: lib/libbrisk.so -> ..., lib/libbrisk.a, include/brisk.h,
#                lib/pkgconfig/brisk.pc,
#                lib/cmake/brisk/briskConfig.cmake, briskConfigVersion.cmake, briskTargets.cmake
#   debug:       lib/debug/.build-id/xx/yyyy.debug (libbrisk.so's debug info; gdb and valgrind
#                find it by build id under /usr/lib/debug when the prefix is /usr)
#
# ("lib" is CMAKE_INSTALL_LIBDIR from GNUInstallDirs: lib/<multiarch> when the prefix is /usr on
# Debian.) Every installed file locates the prefix from its own place, so the prefix can be
# chosen at install time and the tree moved later.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

foreach(_dir CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_INCLUDEDIR)
  if(IS_ABSOLUTE "${${_dir}}")
    message(FATAL_ERROR "brisk: ${_dir} must be relative to the prefix (it is ${${_dir}})")
  endif()
endforeach()

set(BRISK_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/brisk")
set(BRISK_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig")

# --- the libraries and the header ---------------------------------------------------------
# (Shared libraries are not executable: Debian policy 8.1.)
install(FILES "${BRISK_DIST_DIR}/${BRISK_SHARED_FILE}"
  DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
  COMPONENT runtime)
# Symlinks are installed as symlinks.
install(FILES "${BRISK_STAGE_DIR}/${BRISK_SONAME}"
  DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT runtime)
install(FILES "${BRISK_STAGE_DIR}/libbrisk.so" "${BRISK_DIST_DIR}/libbrisk.a"
  DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT development)
install(DIRECTORY "${BRISK_DIST_DIR}/debug/" DESTINATION "lib/debug" COMPONENT debug)
install(FILES "${PROJECT_SOURCE_DIR}/include/brisk.h"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT development)

# --- pkg-config ---------------------------------------------------------------------------
file(RELATIVE_PATH BRISK_PC_PREFIX_FROM_PCDIR
  "/prefix/${BRISK_INSTALL_PKGCONFIGDIR}" "/prefix")
string(REGEX REPLACE "/$" "" BRISK_PC_PREFIX_FROM_PCDIR "${BRISK_PC_PREFIX_FROM_PCDIR}")
set(BRISK_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
set(BRISK_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
list(TRANSFORM BRISK_STATIC_NATIVE_LIBS PREPEND "-l" OUTPUT_VARIABLE _pc_private)
list(JOIN _pc_private " " BRISK_PC_LIBS_PRIVATE)
configure_file("${PROJECT_SOURCE_DIR}/cmake/brisk.pc.in" "${PROJECT_BINARY_DIR}/brisk.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/brisk.pc"
  DESTINATION "${BRISK_INSTALL_PKGCONFIGDIR}" COMPONENT development)

# --- CMake package ------------------------------------------------------------------------
file(RELATIVE_PATH BRISK_PREFIX_FROM_CMAKEDIR "/prefix/${BRISK_INSTALL_CMAKEDIR}" "/prefix")
string(REGEX REPLACE "/$" "" BRISK_PREFIX_FROM_CMAKEDIR "${BRISK_PREFIX_FROM_CMAKEDIR}")
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/briskConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/cmake/briskConfig.cmake"
  INSTALL_DESTINATION "${BRISK_INSTALL_CMAKEDIR}"
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
configure_file("${PROJECT_SOURCE_DIR}/cmake/briskTargets.cmake.in"
  "${PROJECT_BINARY_DIR}/cmake/briskTargets.cmake" @ONLY)
# 0.x releases may break the API at every minor version; from 1.0 on, at every major one.
if(BRISK_VERSION_MAJOR EQUAL 0)
  set(_compat SameMinorVersion)
else()
  set(_compat SameMajorVersion)
endif()
write_basic_package_version_file("${PROJECT_BINARY_DIR}/cmake/briskConfigVersion.cmake"
  VERSION "${BRISK_VERSION}" COMPATIBILITY ${_compat})
install(FILES
    "${PROJECT_BINARY_DIR}/cmake/briskConfig.cmake"
    "${PROJECT_BINARY_DIR}/cmake/briskConfigVersion.cmake"
    "${PROJECT_BINARY_DIR}/cmake/briskTargets.cmake"
  DESTINATION "${BRISK_INSTALL_CMAKEDIR}" COMPONENT development)

# Debian packages of the installed components, with CPack (`cpack -G DEB` in the build tree;
# also RPM with `cpack -G RPM` where rpmbuild is installed). Configure with
# -DCMAKE_INSTALL_PREFIX=/usr for distribution paths (lib/<multiarch>, /usr/lib/debug):
#
#   libbrisk<soversion>         runtime: the stripped libbrisk.so.X.Y.Z and its soname link,
#                               shlibs and the ldconfig trigger (Debian policy 8)
#   libbrisk-dev                development: brisk.h, the libbrisk.so link, libbrisk.a,
#                               brisk.pc and the CMake package
#   libbrisk<soversion>-dbgsym  debug: the shared library's debug info by build id
#
# The runtime package is named after the soname (policy 8.1: libbrisk.so.0.1 -> libbrisk0.1),
# so two ABI lines can be installed side by side. scripts/package builds them, runs lintian,
# unpacks them into a scratch root and builds the consumers against that root only.

set(BRISK_PACKAGE_MAINTAINER "brisk maintainers <brisk@example.org>" CACHE STRING
  "Maintainer field of the Debian packages")
set(BRISK_PACKAGE_RELEASE 1 CACHE STRING "Debian revision of the packages (X.Y.Z-<release>)")

set(_runtime_pkg "libbrisk${BRISK_SOVERSION}")
set(_deb_version "${BRISK_VERSION}-${BRISK_PACKAGE_RELEASE}")

# Each package's /usr/share/doc/<package>: the copyright file and a Debian changelog.
string(TIMESTAMP _date "%a, %d %b %Y %H:%M:%S +0000" UTC)
set(_changelog "${PROJECT_BINARY_DIR}/debian/changelog.Debian")
file(WRITE "${_changelog}"
  "brisk (${_deb_version}) unstable; urgency=medium\n\n"
  "  * brisk ${BRISK_VERSION}, packaged by its CMake build (cpack).\n\n"
  " -- ${BRISK_PACKAGE_MAINTAINER}  ${_date}\n")
find_program(GZIP_EXECUTABLE gzip REQUIRED)
execute_process(COMMAND "${GZIP_EXECUTABLE}" -9nf "${_changelog}" RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "brisk: gzip of ${_changelog} failed")
endif()
foreach(_component_package IN ITEMS "runtime;${_runtime_pkg}" "development;libbrisk-dev"
                                    "debug;${_runtime_pkg}-dbgsym")
  list(GET _component_package 0 _component)
  list(GET _component_package 1 _package)
  install(FILES "${PROJECT_SOURCE_DIR}/cmake/debian/copyright" "${_changelog}.gz"
    DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/${_package}"
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
    COMPONENT ${_component})
endforeach()

set(CPACK_PACKAGE_NAME brisk)
set(CPACK_PACKAGE_VENDOR brisk)
set(CPACK_PACKAGE_VERSION "${BRISK_VERSION}")
set(CPACK_PACKAGE_CONTACT "${BRISK_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_COMPONENTS_ALL runtime development debug)
set(CPACK_STRIP_FILES OFF) # BriskStrip.cmake did it, keeping the debug info

# Synopsis (first line) and extended description of each package.
set(_about "brisk is a Redis and Valkey client with a small, stable C API: connection
pooling, retries with backoff, timeouts, health checks, pipelines,
transactions, TLS and Redis Cluster.")
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "Redis and Valkey client library for C
${_about}
This package holds the shared library.")
set(CPACK_DEBIAN_DEVELOPMENT_DESCRIPTION "Redis and Valkey client library for C - development files
${_about}
This package holds the header, the static library, the pkg-config file and
the CMake package.")
set(CPACK_DEBIAN_DEBUG_DESCRIPTION "debug symbols for ${_runtime_pkg}
The debug info of the brisk shared library, found by gdb, valgrind and abidiff
through its build id.")
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "${CPACK_DEBIAN_RUNTIME_DESCRIPTION}")
set(CPACK_COMPONENT_DEVELOPMENT_DESCRIPTION "${CPACK_DEBIAN_DEVELOPMENT_DESCRIPTION}")
set(CPACK_COMPONENT_DEBUG_DESCRIPTION "${CPACK_DEBIAN_DEBUG_DESCRIPTION}")
# Empty, or CPack would put the project's description before each package's own synopsis.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "")
set(CPACK_RPM_PACKAGE_SUMMARY "Redis and Valkey client library for C")

# The runtime package's control files: shlibs (what dpkg-shlibdeps gives packages linked against
# libbrisk) and an ldconfig trigger instead of maintainer scripts (policy 8.1.1). Written here
# rather than by CPack, whose generated ones call ldconfig from postinst/postrm.
set(_control "${PROJECT_BINARY_DIR}/debian/runtime")
file(MAKE_DIRECTORY "${_control}")
file(WRITE "${_control}/shlibs"
  "libbrisk ${BRISK_SOVERSION} ${_runtime_pkg} (>= ${BRISK_VERSION})\n")
file(WRITE "${_control}/triggers" "activate-noawait ldconfig\n")

# --- DEB ----------------------------------------------------------------------------------
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE "${BRISK_PACKAGE_RELEASE}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${BRISK_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME "${_runtime_pkg}")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
# Depends from dpkg-shlibdeps (libc6, libgcc-s1).
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA "${_control}/shlibs;${_control}/triggers")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME libbrisk-dev)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS "${_runtime_pkg} (= ${_deb_version})")
set(CPACK_DEBIAN_DEBUG_PACKAGE_NAME "${_runtime_pkg}-dbgsym")
set(CPACK_DEBIAN_DEBUG_PACKAGE_SECTION debug)
set(CPACK_DEBIAN_DEBUG_PACKAGE_DEPENDS "${_runtime_pkg} (= ${_deb_version})")

# --- RPM (where rpmbuild exists) ----------------------------------------------------------
set(CPACK_RPM_COMPONENT_INSTALL ON)
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_LICENSE "MIT OR Apache-2.0")
set(CPACK_RPM_PACKAGE_RELEASE "${BRISK_PACKAGE_RELEASE}")
set(CPACK_RPM_RUNTIME_PACKAGE_NAME "libbrisk${BRISK_SOVERSION}")
set(CPACK_RPM_DEVELOPMENT_PACKAGE_NAME brisk-devel)
set(CPACK_RPM_DEVELOPMENT_PACKAGE_REQUIRES "libbrisk${BRISK_SOVERSION} = ${BRISK_VERSION}")
set(CPACK_RPM_DEBUG_PACKAGE_NAME "libbrisk${BRISK_SOVERSION}-debuginfo")

include(CPack)

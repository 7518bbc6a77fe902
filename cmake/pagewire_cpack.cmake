# The Debian package: `make deb` (cpack -G DEB in a build directory) writes
# pagewire_<version>_<arch>.deb with everything cmake/pagewire_install.cmake
# installs, under /usr. One package, command and development files together.
set(PAGEWIRE_PACKAGE_MAINTAINER "pagewire maintainers <maintainers@users.noreply.h-seed-a473ff47.example>"
    CACHE STRING "Maintainer field of the Debian package")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pagewire)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "The pagewire authors")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
    "pagewire is a C++20 library and a command for Linux: memory-mapped files with \
truncation safety, page-cache control, shared memory segments and message \
channels between processes, and a zero-copy file transfer engine (sendfile, \
splice, copy_file_range, io_uring), with an HTTP file server.
This package holds the pagewire command with its man pages and bash \
completion, and the static library, headers, CMake package and pkg-config \
file to build against it.")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Stripped like every Debian binary. install(TARGETS) strips only executables
# and shared libraries, so the static library keeps its symbol table.
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CHECKSUM SHA256)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # pagewire_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${PAGEWIRE_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The command's run-time libraries (fmt, liburing, ZeroMQ, iceoryx, ...) from
# dpkg-shlibdeps; building against the static library also needs liburing
# (pagewireConfig.cmake and pagewire.pc name it), hence the recommendations.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "liburing-dev, pkg-config")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion")

# Checked when cpack runs, not at configure time: the man pages appear at build
# time. cpack sees only CPACK_* variables, hence the name of the docs directory.
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_SOURCE_DIR}/cmake/pagewire_cpack_checks.cmake)
set(CPACK_PAGEWIRE_DOCS_DIR "${PAGEWIRE_DOCS_DIR}")
include(CPack)

# CPACK_PROJECT_CONFIG_FILE: read by cpack for each generator. The package
# promises a man page for the command and each subcommand, so a build without
# help2man (cmake/pagewire_docs.cmake) or without the command cannot make one.
if(CPACK_GENERATOR STREQUAL "DEB")
    if(NOT CPACK_PAGEWIRE_DOCS_DIR)
        message(FATAL_ERROR "pagewire: the Debian package needs the command: "
                            "configure with PAGEWIRE_BUILD_TOOLS=ON")
    endif()
    if(NOT EXISTS "${CPACK_PAGEWIRE_DOCS_DIR}/man1/pagewire.1.gz")
        message(FATAL_ERROR "pagewire: no man pages in ${CPACK_PAGEWIRE_DOCS_DIR}/man1: install "
                            "help2man (scripts/install-deps.sh), reconfigure and build")
    endif()
endif()

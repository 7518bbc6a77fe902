# Installation (PAGEWIRE_INSTALL): library, headers, CMake package and
# pkg-config file; with the tools, the command, its man pages and its bash
# completion; the licence; and the Debian package (cmake/pagewire_cpack.cmake).
install(TARGETS pagewire EXPORT pagewireTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# serve.hpp belongs to pagewire_http (src/http) and broker.hpp to
# pagewire_kafka (src/kafka), which are not installed.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/pagewire DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        PATTERN serve.hpp EXCLUDE PATTERN broker.hpp EXCLUDE)
install(EXPORT pagewireTargets NAMESPACE pagewire::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pagewire)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pagewireConfig.cmake.in
        ${PROJECT_BINARY_DIR}/pagewireConfig.cmake
        INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pagewire)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/pagewireConfigVersion.cmake
        COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/pagewireConfig.cmake
              ${PROJECT_BINARY_DIR}/pagewireConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pagewire)
# Relocatable: the prefix is found from the .pc file's own location, so
# `cmake --install --prefix DIR` works without reconfiguring.
file(RELATIVE_PATH PAGEWIRE_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
configure_file(${PROJECT_SOURCE_DIR}/cmake/pagewire.pc.in ${PROJECT_BINARY_DIR}/pagewire.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/pagewire.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

if(TARGET pagewire_cli)
    install(TARGETS pagewire_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
    # OPTIONAL: without help2man there are no pages (cmake/pagewire_docs.cmake warns).
    install(DIRECTORY ${PAGEWIRE_DOCS_DIR}/man1 DESTINATION ${CMAKE_INSTALL_MANDIR} OPTIONAL)
    # Where bash-completion loads a command's completion from on first use.
    install(FILES ${PAGEWIRE_DOCS_DIR}/bash-completion/pagewire
            DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
endif()

# The licence as Debian's machine-readable copyright file (DEP-5): a header,
# then LICENSE in full as the License paragraph's text (each line indented by
# one space, an empty line written " ."). Installed by every install, not only
# the package, so a copy of pagewire always carries its licence.
file(READ ${PROJECT_SOURCE_DIR}/LICENSE _license)
string(REGEX REPLACE "^\n+" "" _license "${_license}")
string(REGEX REPLACE "\n+$" "" _license "${_license}")
string(REPLACE "\n" "\n " _license "${_license}")
string(REGEX REPLACE "\n [ \t]*\n" "\n .\n" _license "${_license}")
string(REGEX REPLACE "\n [ \t]*\n" "\n .\n" _license "${_license}")  # runs of empty lines
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/copyright @ONLY CONTENT
"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pagewire

Files: *
Copyright: The pagewire authors
License: Apache-2.0

License: Apache-2.0
 @_license@
")
install(FILES ${PROJECT_BINARY_DIR}/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})

include(${PROJECT_SOURCE_DIR}/cmake/pagewire_cpack.cmake)

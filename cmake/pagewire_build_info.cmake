# `pagewire --version`: the version of project(), the build type and the git
# commit, in a generated header the command includes. The header is rewritten
# at every build, but only when its text changes (a new commit, a tree that
# became dirty), so the command never names a stale commit and an unchanged
# tree recompiles nothing.
find_package(Git QUIET)
set(PAGEWIRE_BUILD_INFO_DIR ${PROJECT_BINARY_DIR}/generated)
set(PAGEWIRE_BUILD_INFO_HEADER ${PAGEWIRE_BUILD_INFO_DIR}/pagewire_build_info.hpp)
add_custom_target(pagewire_build_info
    COMMAND ${CMAKE_COMMAND}
        -DOUTPUT=${PAGEWIRE_BUILD_INFO_HEADER}
        -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
        -DGIT_EXECUTABLE=${GIT_EXECUTABLE}
        -DVERSION=${PROJECT_VERSION}
        -DBUILD_TYPE=${CMAKE_BUILD_TYPE}
        -P ${PROJECT_SOURCE_DIR}/cmake/write_build_info.cmake
    BYPRODUCTS ${PAGEWIRE_BUILD_INFO_HEADER}
    COMMENT "Recording version, build type and commit for pagewire --version"
    VERBATIM)
add_dependencies(pagewire_cli pagewire_build_info)
target_include_directories(pagewire_cli PRIVATE ${PAGEWIRE_BUILD_INFO_DIR})

# ctest test: `pagewire --version` prints the version of project(), the build
# type and the commit the build was made from.
# Inputs (-D): PAGEWIRE, VERSION, BUILD_TYPE, SOURCE_DIR, GIT_EXECUTABLE (may be empty).
cmake_minimum_required(VERSION 3.25)

execute_process(COMMAND ${PAGEWIRE} --version RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pagewire --version exited ${rc}: ${err}")
endif()
string(REPLACE "." "\\." version_re "${VERSION}")
if(NOT out MATCHES "^pagewire ${version_re}\nbuild type: ([^\n]+)\ncommit: ([^\n]+)\n$")
    message(FATAL_ERROR "pagewire --version printed:\n${out}\nexpected 'pagewire ${VERSION}', "
                        "'build type: ...', 'commit: ...'")
endif()
set(build_type "${CMAKE_MATCH_1}")
set(commit "${CMAKE_MATCH_2}")
if(NOT build_type STREQUAL BUILD_TYPE)
    message(FATAL_ERROR "pagewire --version says build type '${build_type}', the build is '${BUILD_TYPE}'")
endif()

# In a git checkout of pagewire the commit must be one of its commits
# (git describe: [TAG-N-g]HASH[-dirty]); elsewhere "unknown".
set(in_git FALSE)
if(GIT_EXECUTABLE)
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} rev-parse --show-toplevel
                    RESULT_VARIABLE rc OUTPUT_VARIABLE top ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(rc EQUAL 0)
        file(REAL_PATH "${top}" top)
        file(REAL_PATH "${SOURCE_DIR}" source)
        if(top STREQUAL source)
            set(in_git TRUE)
        endif()
    endif()
endif()
if(NOT in_git)
    if(NOT commit STREQUAL "unknown")
        message(FATAL_ERROR "not built from a git checkout, yet --version names commit '${commit}'")
    endif()
    message(STATUS "pagewire --version: ${VERSION}, ${build_type}, commit unknown (no git checkout)")
    return()
endif()
if(NOT commit MATCHES "^(.+-g)?([0-9a-f]+)(-dirty)?$")
    message(FATAL_ERROR "--version names commit '${commit}', not what git describe prints")
endif()
set(hash "${CMAKE_MATCH_2}")
string(LENGTH "${hash}" hash_length)
execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} cat-file -e "${hash}^{commit}"
                RESULT_VARIABLE rc ERROR_QUIET)
if(hash_length LESS 7 OR NOT rc EQUAL 0)
    message(FATAL_ERROR "--version names commit '${commit}', which is not a commit of ${SOURCE_DIR}")
endif()
message(STATUS "pagewire --version: ${VERSION}, ${build_type}, commit ${commit}")

# ctest test: each public header, included first in a translation unit, stops
# a -std=c++17 compilation with include/pagewire/config.hpp's message and no
# error from anywhere else. (That each compiles with -std=c++20 is the
# header_check target's job, in tests/CMakeLists.txt.)
# Inputs (-D): CXX, INCLUDE_DIR.
cmake_minimum_required(VERSION 3.25)

file(GLOB headers ${INCLUDE_DIR}/pagewire/*.hpp)
list(LENGTH headers count)
if(count LESS 2)
    message(FATAL_ERROR "no public headers found in ${INCLUDE_DIR}/pagewire")
endif()
set(message "pagewire needs C++20")
foreach(header ${headers})
    get_filename_component(name ${header} NAME)
    file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/cxx17_check.cpp "#include <pagewire/${name}>\nint main() {}\n")
    execute_process(COMMAND ${CXX} -std=c++17 -fsyntax-only -I${INCLUDE_DIR}
                            ${CMAKE_CURRENT_BINARY_DIR}/cxx17_check.cpp
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(rc EQUAL 0)
        message(FATAL_ERROR "pagewire/${name} compiled with -std=c++17")
    endif()
    string(FIND "${err}" "${message}" at)
    if(at EQUAL -1)
        message(FATAL_ERROR "pagewire/${name} with -std=c++17 failed without '${message}':\n${err}")
    endif()
    # Every diagnostic comes from config.hpp: the compilation stopped there.
    string(REGEX MATCHALL "[^\n]*:[0-9]+:[0-9]+: (fatal error|error|warning)[^\n]*" diagnostics
           "${err}")
    foreach(line ${diagnostics})
        if(NOT line MATCHES "pagewire/config\\.hpp:")
            message(FATAL_ERROR "pagewire/${name} with -std=c++17: an error beyond the one "
                                "message:\n${line}\n--- all of it:\n${err}")
        endif()
    endforeach()
endforeach()
file(REMOVE ${CMAKE_CURRENT_BINARY_DIR}/cxx17_check.cpp)
message(STATUS "${count} headers refuse C++17 with one message")

# ctest test: install the build tree into a temporary prefix, then build and run
# tests/consumer against it, either with CMake's find_package(pagewire)
# (MODE=cmake) or with the flags of `pkg-config --cflags --libs pagewire`
# (MODE=pkg-config); or build tests/consumer with pagewire's sources added by
# add_subdirectory (MODE=subdirectory, also what FetchContent does).
# Inputs (-D): MODE, BUILD_DIR, CONSUMER_DIR, CXX, GENERATOR; SOURCE_DIR for
# MODE=subdirectory; LAUNCHER (optional: a compiler launcher such as ccache).
cmake_minimum_required(VERSION 3.25)

foreach(var MODE BUILD_DIR CONSUMER_DIR CXX GENERATOR)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "test_install.cmake: -D${var}=... is required")
    endif()
endforeach()

execute_process(COMMAND mktemp -d /tmp/pagewire-install-XXXXXX
                OUTPUT_VARIABLE tmp OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "mktemp failed")
endif()
set(prefix ${tmp}/prefix)

# Runs a command; on failure removes the temporary directory and fails the
# test with the command's output.
function(run_step what)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        file(REMOVE_RECURSE ${tmp})
        message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n--- stdout\n${out}\n--- stderr\n${err}")
    endif()
    set(step_output "${out}" PARENT_SCOPE)
endfunction()

function(expect_output what actual expected)
    if(NOT actual STREQUAL expected)
        file(REMOVE_RECURSE ${tmp})
        message(FATAL_ERROR "${what}: got '${actual}', expected '${expected}'")
    endif()
endfunction()

# A file the consumer maps: 5000 bytes starting with 'P'.
string(REPEAT "x" 4999 filler)
file(WRITE ${tmp}/input "P${filler}")
set(expected "size 5000 first 'P'\n")

if(MODE STREQUAL "subdirectory")
    # The consumer builds pagewire as a part of itself. pagewire must then keep
    # to itself: no -Werror on its sources (a newer compiler's new warning must
    # not fail someone else's build), no tests or tools, no install rules.
    set(launcher)
    if(LAUNCHER)
        set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
    endif()
    run_step("configure consumer" ${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${tmp}/build -G ${GENERATOR}
             -DCMAKE_CXX_COMPILER=${CXX} -DPAGEWIRE_SOURCE_DIR=${SOURCE_DIR} ${launcher})
    file(GLOB_RECURSE build_files ${tmp}/build/*.ninja ${tmp}/build/*.make ${tmp}/build/*flags.make)
    foreach(build_file ${build_files})
        file(STRINGS ${build_file} werror REGEX "-Werror( |$)")
        if(werror)
            file(REMOVE_RECURSE ${tmp})
            message(FATAL_ERROR "add_subdirectory(pagewire) compiles with -Werror (${build_file})")
        endif()
    endforeach()
    run_step("build consumer" ${CMAKE_COMMAND} --build ${tmp}/build --target consumer)
    run_step("run consumer" ${tmp}/build/consumer ${tmp}/input)
    expect_output("add_subdirectory consumer" "${step_output}" "${expected}")
    run_step("install consumer" ${CMAKE_COMMAND} --install ${tmp}/build --prefix ${prefix})
    file(GLOB_RECURSE installed RELATIVE ${prefix} ${prefix}/*)
    if(NOT installed STREQUAL "")
        file(REMOVE_RECURSE ${tmp})
        message(FATAL_ERROR "installing the consumer installed pagewire's files: ${installed}")
    endif()
    file(REMOVE_RECURSE ${tmp})
    message(STATUS "install test passed")
    return()
endif()

# 1. install
run_step("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(header error file guard mapping unique_fd pagewire)
    if(NOT EXISTS ${prefix}/include/pagewire/${header}.hpp)
        file(REMOVE_RECURSE ${tmp})
        message(FATAL_ERROR "installed tree lacks include/pagewire/${header}.hpp")
    endif()
endforeach()

if(MODE STREQUAL "cmake")
# 2. find_package(pagewire) consumer
run_step("configure consumer" ${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${tmp}/build -G ${GENERATOR}
         -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix})
run_step("build consumer" ${CMAKE_COMMAND} --build ${tmp}/build)
run_step("run consumer" ${tmp}/build/consumer ${tmp}/input)
expect_output("find_package consumer" "${step_output}" "${expected}")
elseif(MODE STREQUAL "pkg-config")

# 3. pkg-config consumer. The .pc lands in <libdir>/pkgconfig, libdir per GNUInstallDirs.
# The .pc is relocatable (prefix from ${pcfiledir}), so installing with
# --prefix after configuring for /usr/local must still work.
file(GLOB_RECURSE pc_files ${prefix}/*/pagewire.pc)
list(LENGTH pc_files pc_count)
if(NOT pc_count EQUAL 1)
    file(REMOVE_RECURSE ${tmp})
    message(FATAL_ERROR "expected one installed pagewire.pc, found: '${pc_files}'")
endif()
get_filename_component(pc_dir ${pc_files} DIRECTORY)
run_step("pkg-config" ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${pc_dir}
         pkg-config --cflags --libs pagewire)
string(STRIP "${step_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
run_step("compile with pkg-config flags" g++ -std=c++20 ${CONSUMER_DIR}/main.cpp ${pc_flags}
         -o ${tmp}/consumer_pc)
run_step("run pkg-config consumer" ${tmp}/consumer_pc ${tmp}/input)
expect_output("pkg-config consumer" "${step_output}" "${expected}")
else()
    file(REMOVE_RECURSE ${tmp})
    message(FATAL_ERROR "MODE must be cmake or pkg-config, not '${MODE}'")
endif()

file(REMOVE_RECURSE ${tmp})
message(STATUS "install test passed")

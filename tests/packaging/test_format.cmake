# ctest test: every C++ source and header of the project is formatted as the
# repository's .clang-format says (clang-format-14), so a change that is not
# formatted fails the suite with the files and lines named.
# Inputs (-D): CLANG_FORMAT, SOURCE_DIR.
cmake_minimum_required(VERSION 3.25)

set(files)
foreach(dir include src tools bench tests examples fuzz)
    file(GLOB_RECURSE found ${SOURCE_DIR}/${dir}/*.cpp ${SOURCE_DIR}/${dir}/*.hpp
         ${SOURCE_DIR}/${dir}/*.h ${SOURCE_DIR}/${dir}/*.cc)
    list(APPEND files ${found})
endforeach()
# Installed npm packages (tests/broker_node/node_modules, git-ignored) are not ours.
list(FILTER files EXCLUDE REGEX "/node_modules/")
list(LENGTH files count)
if(count LESS 50)
    message(FATAL_ERROR "only ${count} sources found under ${SOURCE_DIR}")
endif()
execute_process(COMMAND ${CLANG_FORMAT} --dry-run --Werror ${files}
                WORKING_DIRECTORY ${SOURCE_DIR}
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "not formatted (run clang-format-14 -i on these):\n${err}")
endif()
message(STATUS "${count} files formatted as .clang-format says")

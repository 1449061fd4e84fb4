# atelier_discover_doctest_tests(<target> [WORKING_DIRECTORY dir] [TIMEOUT seconds])
#
# Registers every TEST_CASE of a doctest program as its own ctest test, listed after each build
# (`<program> --list-test-cases`). It does what doctest's doctest_discover_tests does, and also:
#   - keeps test names that contain ';' whole (doctest's script splits them into tests that match nothing);
#   - fails a test whose filter matched no test case (doctest would report success for running nothing);
#   - gives every test a TIMEOUT, so a hang fails the run instead of stalling CI.
set(_ATELIER_DOCTEST_ADD_TESTS_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/atelier_doctest_add_tests.cmake")

function(atelier_discover_doctest_tests target)
  cmake_parse_arguments(arg "" "WORKING_DIRECTORY;TIMEOUT" "" ${ARGN})
  if(NOT arg_WORKING_DIRECTORY)
    set(arg_WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 300)
  endif()
  set(ctest_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake")
  set(include_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake")
  add_custom_command(TARGET ${target} POST_BUILD
    BYPRODUCTS "${ctest_file}"
    COMMAND "${CMAKE_COMMAND}"
            -D "TEST_TARGET=${target}"
            -D "TEST_EXECUTABLE=$<TARGET_FILE:${target}>"
            -D "TEST_WORKING_DIR=${arg_WORKING_DIRECTORY}"
            -D "TEST_TIMEOUT=${arg_TIMEOUT}"
            -D "CTEST_FILE=${ctest_file}"
            -P "${_ATELIER_DOCTEST_ADD_TESTS_SCRIPT}"
    VERBATIM)
  file(WRITE "${include_file}"
    "if(EXISTS \"${ctest_file}\")\n"
    "  include(\"${ctest_file}\")\n"
    "else()\n"
    "  add_test(${target}_NOT_BUILT ${target}_NOT_BUILT)\n"
    "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${include_file}")
endfunction()

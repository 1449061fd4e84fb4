# Run after a doctest program is built (see AtelierDoctest.cmake): lists its test cases and writes CTEST_FILE, one
# add_test per TEST_CASE (labelled with the program's name, `long` for names containing "(long)", and `heavy` for
# the cases of the doctest test suite "heavy"). Inputs: TEST_TARGET, TEST_EXECUTABLE, TEST_WORKING_DIR,
# TEST_TIMEOUT, CTEST_FILE.
cmake_policy(SET CMP0057 NEW)  # if(... IN_LIST ...): a script run with -P starts with the old policies

# Test names may contain ';', CMake's list separator: hide it while the output is cut into lines.
set(semicolon "@ATELIER_SEMICOLON@")

# list_cases(VAR ARGS...): the test case names `<program> --list-test-cases ARGS...` prints, ';' hidden, in VAR.
function(list_cases var)
  execute_process(
    COMMAND "${TEST_EXECUTABLE}" --list-test-cases ${ARGN}
    OUTPUT_VARIABLE output
    ERROR_VARIABLE errors
    RESULT_VARIABLE result
    WORKING_DIRECTORY "${TEST_WORKING_DIR}")
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "listing the tests of ${TEST_EXECUTABLE} failed (${result}):\n${output}\n${errors}")
  endif()
  string(REPLACE ";" "${semicolon}" output "${output}")
  string(REPLACE "\n" ";" lines "${output}")
  set(${var} "${lines}" PARENT_SCOPE)
endfunction()

list_cases(lines)
# Cases that take ten seconds or more under a sanitizer, where a lighter case covers the same threaded code, are
# in the doctest test suite "heavy" (TEST_CASE("..." * doctest::test_suite("heavy"))): scripts/test.sh leaves the
# label `heavy` out of the TSan pass, the slowest one (docs/reliability.md, "The test script's time").
list_cases(heavy_lines --test-suite=heavy)

set(script "")
set(count 0)
foreach(line IN LISTS lines)
  if(line STREQUAL "" OR line MATCHES "^===+$" OR line MATCHES "^\\[doctest\\] ")
    continue()
  endif()
  string(REPLACE "${semicolon}" ";" name "${line}")
  # doctest splits a filter at commas; "\," is a literal comma.
  string(REPLACE "," "\\," filter "${name}")
  # COST: ctest starts the costlier tests first, so a slow one does not run alone at the end of a parallel run
  # (ctest has no times of its own before a build folder's first run).
  set(labels "${TEST_TARGET}")
  set(cost 1)
  if(line IN_LIST heavy_lines)
    list(APPEND labels heavy)
    set(cost 10)
  endif()
  # Training-length tests say "(long)" in their name: they carry the label `long`, so that scripts/test.sh runs
  # them once, in the Release build, and leaves them out of the sanitizer and thread-count passes (ctest -LE long).
  string(FIND "${name}" "(long)" long_at)
  if(NOT long_at EQUAL -1)
    list(APPEND labels long)
    set(cost 30)
  endif()
  string(APPEND script
    "add_test([==[${name}]==] \"${TEST_EXECUTABLE}\" [==[--test-case=${filter}]==])\n"
    "set_tests_properties([==[${name}]==] PROPERTIES\n"
    "  WORKING_DIRECTORY \"${TEST_WORKING_DIR}\"\n"
    "  TIMEOUT ${TEST_TIMEOUT}\n"
    "  COST ${cost}\n"
    "  LABELS \"${labels}\"\n"
    "  FAIL_REGULAR_EXPRESSION \"test cases: 0 \")\n")
  math(EXPR count "${count} + 1")
endforeach()

if(count EQUAL 0)
  message(WARNING "${TEST_EXECUTABLE} lists no test cases")
endif()
file(WRITE "${CTEST_FILE}" "${script}")

# The layering rule of DESIGN.md section 1, checked: a file includes only project headers of its own floor and
# the floors below (backends < tensor < autograd < nn < began), and .cu files include only backends/ headers.
# Run as a test: cmake -DSOURCE_DIR=<repo> -P tests/tools/check_layering.cmake
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "pass -DSOURCE_DIR=<repository root>")
endif()

set(floors backends tensor autograd nn began)
set(violations "")
set(checked 0)
foreach(level RANGE 0 4)
  list(GET floors ${level} floor)
  file(GLOB_RECURSE files "${SOURCE_DIR}/${floor}/*.h" "${SOURCE_DIR}/${floor}/*.cpp" "${SOURCE_DIR}/${floor}/*.cu"
       "${SOURCE_DIR}/${floor}/*.cuh")
  foreach(file IN LISTS files)
    math(EXPR checked "${checked} + 1")
    file(STRINGS "${file}" includes REGEX "^#include \"[a-z_]+/")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^#include \"([a-z_]+)/.*" "\\1" target "${line}")
      list(FIND floors "${target}" target_level)
      if(target_level EQUAL -1)
        continue()  # not a floor (e.g. a test helper); only floors are ranked
      endif()
      file(RELATIVE_PATH rel "${SOURCE_DIR}" "${file}")
      if(target_level GREATER level)
        string(APPEND violations "  ${rel}: ${line} (floor ${floor} may not include floor ${target})\n")
      endif()
      if(file MATCHES "\\.cuh?$" AND NOT target STREQUAL "backends")
        string(APPEND violations "  ${rel}: ${line} (.cu files include only backends/ headers)\n")
      endif()
    endforeach()
  endforeach()
endforeach()

if(violations)
  message(FATAL_ERROR "layering violations:\n${violations}")
endif()
message(STATUS "layering: ${checked} files checked, every include goes to its own floor or below")

# Every C++ and CUDA source of the project is formatted as .clang-format says (clang-format --dry-run --Werror).
# Run as a test: cmake -DSOURCE_DIR=<repo> -DCLANG_FORMAT=<clang-format> -P tests/tools/check_format.cmake
if(NOT SOURCE_DIR OR NOT CLANG_FORMAT)
  message(FATAL_ERROR "pass -DSOURCE_DIR=<repository root> -DCLANG_FORMAT=<clang-format program>")
endif()

set(globs)
foreach(dir backends tensor autograd nn began tests bench)
  list(APPEND globs "${SOURCE_DIR}/${dir}/*.h" "${SOURCE_DIR}/${dir}/*.cpp" "${SOURCE_DIR}/${dir}/*.cu")
endforeach()
file(GLOB_RECURSE files ${globs})
list(APPEND files "${SOURCE_DIR}/atelier.h")
list(LENGTH files count)

execute_process(COMMAND "${CLANG_FORMAT}" --dry-run --Werror ${files} RESULT_VARIABLE result
                ERROR_VARIABLE diagnostics)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "clang-format would change these files (run clang-format -i on them):\n${diagnostics}")
endif()
message(STATUS "format: ${count} files match .clang-format")

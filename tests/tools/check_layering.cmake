# The layering rule (docs/architecture.md, section 1), checked: a file includes only project headers of its own
# floor and the floors below (backends < tensor < autograd < nn < began), and .cu files include only backends/ headers.
# Run as a test: cmake -DSOURCE_DIR=<repo> -P tests/tools/check_layering.cmake
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "pass -DSOURCE_DIR=<repository root>")
endif()

cmake_policy(SET CMP0057 NEW)  # if(IN_LIST)
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

# The one upward edge the includes cannot show: Tensor (floor tensor) declares its differentiable methods and
# backward(), and the autograd floor defines them. It is allowed in exactly two files (docs/architecture.md,
# "Layering"): autograd/tensor_methods.cpp (the differentiable methods) and autograd/engine.cpp (backward). Two
# checks keep it that narrow:
#  1. no other file outside tensor/ defines a member of a tensor-floor class (Tensor, TensorImpl, Storage);
#  2. no file of floor tensor calls one of the methods defined upward, which would make floor tensor depend on
#     floor autograd at link time.
set(upward_definers autograd/tensor_methods.cpp autograd/engine.cpp)
set(upward_methods "")
foreach(level RANGE 0 4)
  list(GET floors ${level} floor)
  if(floor STREQUAL "tensor")
    continue()
  endif()
  file(GLOB_RECURSE files "${SOURCE_DIR}/${floor}/*.cpp" "${SOURCE_DIR}/${floor}/*.cu")
  foreach(file IN LISTS files)
    file(RELATIVE_PATH rel "${SOURCE_DIR}" "${file}")
    file(STRINGS "${file}" definitions REGEX "^[A-Za-z].*[ &*](Tensor|TensorImpl|Storage)::[a-z_]+\\(")
    foreach(line IN LISTS definitions)
      if(rel IN_LIST upward_definers AND line MATCHES "[ &*]Tensor::([a-z_]+)\\(")
        list(APPEND upward_methods "${CMAKE_MATCH_1}")
      else()
        string(APPEND violations "  ${rel}: defines a member of a tensor-floor class: ${line}\n")
      endif()
    endforeach()
  endforeach()
endforeach()
list(REMOVE_DUPLICATES upward_methods)
if(NOT upward_methods)
  string(APPEND violations "  found no Tensor method defined in ${upward_definers}: has the check gone stale?\n")
endif()
file(GLOB_RECURSE tensor_files "${SOURCE_DIR}/tensor/*.h" "${SOURCE_DIR}/tensor/*.cpp")
foreach(file IN LISTS tensor_files)
  file(RELATIVE_PATH rel "${SOURCE_DIR}" "${file}")
  file(STRINGS "${file}" lines)
  foreach(line IN LISTS lines)
    if(line MATCHES "^ *//")
      continue()  # a comment may name the methods
    endif()
    foreach(method IN LISTS upward_methods)
      if(line MATCHES "(\\.|->)${method}\\(")
        string(APPEND violations "  ${rel}: calls ${method}(), defined on floor autograd: ${line}\n")
      endif()
    endforeach()
  endforeach()
endforeach()

# CUDA stays behind the backend: only the CUDA backend and what only CUDA builds compile (the CUDA tests, the
# emulation, tests/test_cuda_support.cpp) include a CUDA toolkit header or a backends/cuda/ header. Elsewhere such an
# include would break the CPU-only build on a machine without the toolkit, which a machine with CUDA headers on the
# compiler's default path (/usr/local/include) would not show.
set(cuda_allowed "^(backends/cuda/|tests/cuda/|tests/cuda_emulation/|tests/test_cuda_support\\.cpp$)")
set(cuda_checked 0)
file(GLOB_RECURSE all_sources "${SOURCE_DIR}/*.h" "${SOURCE_DIR}/*.cpp" "${SOURCE_DIR}/*.cu" "${SOURCE_DIR}/*.cuh")
foreach(file IN LISTS all_sources)
  file(RELATIVE_PATH rel "${SOURCE_DIR}" "${file}")
  if(rel MATCHES "^(build|\\.)" OR rel MATCHES "${cuda_allowed}")
    continue()  # build folders and hidden ones (.gpu/) are not sources
  endif()
  math(EXPR cuda_checked "${cuda_checked} + 1")
  file(STRINGS "${file}" cuda_includes REGEX "^#include [<\"](cu[a-z_0-9]*\\.h|backends/cuda/)")
  foreach(line IN LISTS cuda_includes)
    string(APPEND violations "  ${rel}: ${line} (CUDA headers only in backends/cuda/ and the CUDA-only tests)\n")
  endforeach()
endforeach()
if(cuda_checked LESS 100)
  string(APPEND violations "  the CUDA-header check saw only ${cuda_checked} files: has it gone stale?\n")
endif()

if(violations)
  message(FATAL_ERROR "layering violations:\n${violations}")
endif()
list(LENGTH upward_methods n_upward)
message(STATUS "layering: ${checked} files checked, every include goes to its own floor or below; the "
               "${n_upward} Tensor methods defined on floor autograd are defined only in the files allowed and "
               "called from no file of floor tensor; no CUDA header outside the CUDA-only files "
               "(${cuda_checked} files checked)")

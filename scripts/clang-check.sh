#!/usr/bin/env bash
# Checks that clang++ accepts every C++ source a CPU-only build compiles, warning-free: the libraries of floors 1-5
# without the CUDA backend, their tools, the test suite (tests/*.cpp, tests/parity/, tests/tools/), the fuzz
# targets (scripts/fuzz.sh builds the libraries and tests/fuzz/ with clang, for libFuzzer), the package consumer
# (tests/consumer/) and the benchmarks (bench/), so that CC=clang CXX=clang++ builds the whole tree. Every other
# build is g++'s: a GCC-only construct (GCC's __builtin_shuffle, where both compilers have
# __builtin_shufflevector), a C++20 feature g++ 12 has and clang 14 lacks (a lambda capturing a structured
# binding, clang 16's) or a warning only clang gives would break a clang build and fail nothing else. This parses
# each file (clang++ -fsyntax-only -Wall -Wextra -Werror, no code generated; clang's warnings come from that
# stage), as many at once as there are cores, and lists every file that fails.
#
# Left out: tests/cuda/, tests/test_cuda_support.cpp and tests/cuda_emulation/, which only a CUDA build (or
# scripts/cuda-emulate.sh, with nvcc) compiles; several include the CUDA toolkit's headers.
#
#   scripts/clang-check.sh                        (scripts/test.sh runs it when clang++ is installed; it installs clang)
#   scripts/clang-check.sh --skip-compiled BUILD  leaves out the sources BUILD compiled (its compile_commands.json),
#                                                 for a BUILD configured with clang++ and -Werror (test.sh's build/asan)
#
# Environment: ATELIER_JOBS=N files parsed at once (default: the number of cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v clang++ >/dev/null; then
  echo "clang-check: clang++ not found (Debian: apt-get install clang)" >&2
  exit 2
fi

# What CMakeLists.txt compiles in a CPU-only build: atelier and atelier_began (backends/cuda/ contributes only
# no_cuda.cpp there), the op table, the tools, the tests and the benchmarks; with the fuzz targets and the consumer.
mapfile -t files < <(find backends tensor autograd nn began tests bench -name '*.cpp' \
  ! \( -path 'backends/cuda/*' ! -name no_cuda.cpp \) \
  ! -path 'tests/cuda/*' ! -path 'tests/cuda_emulation/*' ! -name test_cuda_support.cpp | sort)

# --skip-compiled BUILD: a clang build has compiled those files already (-Wall -Wextra -Werror, code generated too).
if [[ "${1:-}" == --skip-compiled ]]; then
  commands="${2:?clang-check: --skip-compiled needs a build folder}/compile_commands.json"
  [[ -f "$commands" ]] || { echo "clang-check: $commands is missing" >&2; exit 2; }
  grep -q '^CMAKE_CXX_COMPILER:.*clang' "$2/CMakeCache.txt" ||
    { echo "clang-check: $2 is not a clang++ build" >&2; exit 2; }
  mapfile -t compiled < <(sed -n 's|^ *"file": "'"$PWD"'/\(.*\)",\{0,1\}$|\1|p' "$commands" | sort -u)
  mapfile -t files < <(comm -23 <(printf '%s\n' "${files[@]}") <(printf '%s\n' "${compiled[@]}"))
  echo "clang-check: ${#compiled[@]} sources compiled by clang++ in $2; parsing the other ${#files[@]}"
elif [[ $# -gt 0 ]]; then
  echo "usage: scripts/clang-check.sh [--skip-compiled BUILD]" >&2
  exit 2
fi
# The flags of a Release build that matter to parsing: the include paths (doctest and Google Benchmark are in
# /usr/include), the tests' ATELIER_SOURCE_DIR, C++20, the warnings (-Werror, as scripts/test.sh builds) and the
# target (the vector code is written for the build machine's CPU, as ATELIER_NATIVE compiles it; -march=native
# also where it is OFF, since only parsing is checked).
flags=(-std=c++20 -fsyntax-only -Wall -Wextra -Werror -I. -isystem /usr/include/eigen3 -DATELIER_SOURCE_DIR='"."'
  -march=native -DEIGEN_DONT_PARALLELIZE)

# One report per rejected file (jobs run in parallel, so each writes its own), printed together at the end.
reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
check_one() {
  local report
  report="$reports/$(echo "$1" | tr / _).log"
  if ! clang++ "${flags[@]}" "$1" >"$report" 2>&1; then
    echo "--- $1" >"$report.failed"
    grep -m 5 'error:' "$report" >>"$report.failed" || cat "$report" >>"$report.failed"
  fi
}
jobs_max="${ATELIER_JOBS:-$(nproc)}"
for f in "${files[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
  check_one "$f" &
done
wait

if compgen -G "$reports/*.failed" >/dev/null; then
  echo "clang-check: clang++ ($(clang++ --version | head -1)) rejects these files:" >&2
  cat "$reports"/*.failed >&2
  exit 1
fi
echo "clang-check: ${#files[@]} files parse warning-free with $(clang++ --version | head -1)"

#!/usr/bin/env bash
# Checks that clang++ accepts every source the fuzz build compiles (scripts/fuzz.sh builds the libraries and the
# fuzz targets with clang, for libFuzzer): the libraries of floors 1-5 without the CUDA backend, their tools and
# tests/fuzz/. The g++ builds cannot see a GCC-only construct (GCC's __builtin_shuffle, say, where both compilers
# have __builtin_shufflevector), and one such line breaks fuzz.sh without failing anything else; this parses each
# file (clang++ -fsyntax-only, no code generated), as many at once as there are cores, and lists every file that
# fails.
#
#   scripts/clang-check.sh        (scripts/test.sh runs it when clang++ is installed; it installs clang)
#
# Environment: ATELIER_JOBS=N files parsed at once (default: the number of cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v clang++ >/dev/null; then
  echo "clang-check: clang++ not found (Debian: apt-get install clang)" >&2
  exit 2
fi

# What CMakeLists.txt compiles into atelier and atelier_began in a CPU-only build (backends/cuda/ contributes only
# no_cuda.cpp there), the op table, the tools and the fuzz targets.
mapfile -t files < <(find backends tensor autograd nn began tests/fuzz -name '*.cpp' \
  ! \( -path 'backends/cuda/*' ! -name no_cuda.cpp \) | sort)

# The flags of a Release build that matter to parsing: the include paths, C++20 and the target (the vector code
# is written for the build machine's CPU, as ATELIER_NATIVE compiles it; -march=native also where it is OFF, since
# only parsing is checked).
flags=(-std=c++20 -fsyntax-only -I. -isystem /usr/include/eigen3 -march=native -DEIGEN_DONT_PARALLELIZE
  -Wno-unknown-warning-option)

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
echo "clang-check: ${#files[@]} files parse with $(clang++ --version | head -1)"

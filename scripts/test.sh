#!/usr/bin/env bash
# Builds atelier in Release and runs every test, twice: with the CUDA backend (build/cuda, when nvcc is found) and
# CPU-only (build/cpu). Then builds the libraries alone (build/lib: no tests, benchmarks or tools, and doctest,
# Google Benchmark and CLI11 barred from the configure), installs that build and builds tests/consumer against it.
# The CPU suite then runs again at ATELIER_NUM_THREADS=1, 3 and 7 (thread counts below, equal to and above the
# cores expose chunking and timing dependence). Training-length tests (ctest label `long`: "(long)" in the name) run
# once, in the Release CPU build. Then the sanitizer pass: the CPU suite and bin/gradcheck under ASan+UBSan
# (build/asan) and the suite at ATELIER_NUM_THREADS=3 under TSan (build/tsan), each at -O1, test targets only
# (no benchmarks; TSan no tools either), without the training-length tests (TSan without the `heavy` ones too);
# any sanitizer report fails the test it comes from.
# Last, scripts/clang-check.sh: every source a CPU-only build compiles (the libraries, tools, tests, fuzz targets
# and benchmarks) must parse warning-free with clang++ too (every build but build/asan is g++'s; that one is
# clang's where clang++ is installed, and the check then parses only what it did not compile). Exits non-zero if a
# configuration fails to build or any test fails. Before the summary it prints the seconds each phase took.
#
# Time (CI has 45 minutes on 2 cores, from a fresh clone and an empty cache; measured in docs/reliability.md, "The
# test script's time"): the compiles go through ccache, so the CPU-only and library-only builds reuse the objects
# the CUDA configuration compiled from the same preprocessed source (ccache compares the preprocessor's output, so
# the CUDA build's extra include path does not matter); the tests run as many at once as there are cores; the
# sanitizer builds keep line tables only (-g1: reports still name file, line and inlined frames), a third less
# compile time than full debug information.
#
# Environment:
#   ATELIER_SANITIZERS=0    skip the sanitizer pass (default 1)
#   ATELIER_THREAD_PASSES=0 skip the ATELIER_NUM_THREADS=1, 3, 7 passes (default 1)
#   ATELIER_REQUIRE_CUDA=1  fail when nvcc is not found (CI), instead of skipping the CUDA configuration
#   ATELIER_WERROR=OFF      let warnings pass (default ON: atelier builds warning-free)
#   ATELIER_CTEST_JOBS=N    run N tests at once (default: the number of cores)
#   ATELIER_CCACHE=0        compile without ccache (default: through ccache, unless CMAKE_CXX_COMPILER_LAUNCHER
#                           is set already)
#   CUDAARCHS               CUDA architectures to build (default 80;90)
#   ATELIER_SKIP_DEPS=1     do not check/install the Debian packages
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
# clang: for scripts/clang-check.sh only (the fuzz build's compiler; CC=clang CXX=clang++ builds the tree too);
# ccache: shares objects between this script's builds (above). Both are for testing only, so they are added here,
# not in deps.sh.
ATELIER_APT_PACKAGES+=(clang ccache)
deps_start=$SECONDS
atelier_install_deps

jobs="$(nproc)"
werror="${ATELIER_WERROR:-ON}"
ctest_jobs="${ATELIER_CTEST_JOBS:-$jobs}"
# CMake copies these variables into a build folder's cache when the cache names no launcher yet.
if [[ "${ATELIER_CCACHE:-1}" == 1 && -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ]] && command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_CUDA_COMPILER_LAUNCHER=ccache
fi
status=0
summary=()
timings=()  # "PHASE: N s" for each build and test phase, printed before the summary (CI's time budget is 45 min)

# record_time PHASE START: appends the seconds since START (a $SECONDS value) to `timings`.
record_time() {
  timings+=("$1: $((SECONDS - $2)) s")
}
record_time "packages (apt-get)" "$deps_start"

# run_config NAME CMAKE_ARGS...: configure, build and test build/NAME; records the outcome in `summary`.
# `build_type` (default Release) and `ctest_args` (extra ctest arguments, e.g. -LE long) change the defaults;
# `launcher` (a command prefix, e.g. env VAR=value) runs the build and ctest, which both run the test program.
build_type=Release
ctest_args=()
launcher=()
run_config() {
  local name="$1"
  shift
  local build="build/$name" start=$SECONDS
  echo "=== [$name] configure and build ($build, $build_type, $jobs jobs) ==="
  if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="$build_type" -DATELIER_WERROR="$werror" "$@"; then
    summary+=("$name: CONFIGURE FAILED")
    status=1
    return 0
  fi
  if ! "${launcher[@]}" cmake --build "$build" -j"$jobs"; then
    summary+=("$name: BUILD FAILED")
    status=1
    return 0
  fi
  record_time "$name: configure and build" "$start"
  run_ctest "$name" "$build" "${ctest_args[@]}"
}

# run_ctest NAME BUILD CTEST_ARGS...: runs ctest in BUILD (the environment passes through); records the outcome.
run_ctest() {
  local name="$1" build="$2" log result start=$SECONDS
  shift 2
  echo "=== [$name] ctest $* ==="
  log="$(mktemp)"
  if "${launcher[@]}" ctest --test-dir "$build" --output-on-failure --no-tests=error --timeout 900 \
    -j"$ctest_jobs" "$@" 2>&1 | tee "$log"; then
    result="$(grep -E 'tests passed' "$log" | tail -n 1 || true)"
    summary+=("$name: $result")
  else
    result="$(grep -E 'tests passed|tests failed|No tests were found' "$log" | tail -n 1 || true)"
    summary+=("$name: FAILED: $result")
    status=1
  fi
  # ctest's lists of skipped and failed tests, for the summary below.
  local details
  details="$(sed -n '/^The following tests/,$p' "$log")"
  if [[ -n "$details" ]]; then
    summary+=("$(printf '%s\n' "$details" | sed 's/^/    /')")
  fi
  rm -f "$log"
  record_time "$name: ctest" "$start"
}

if atelier_find_nvcc; then
  ctest_args=(-LE long)  # the training-length tests run once, in build/cpu below
  run_config cuda -DATELIER_CUDA=ON
  ctest_args=()
else
  echo "=== [cuda] SKIPPED: nvcc not found (not on PATH, not at /usr/local/cuda/bin/nvcc) ==="
  if [[ "${ATELIER_REQUIRE_CUDA:-0}" == 1 ]]; then
    summary+=("cuda: FAILED: ATELIER_REQUIRE_CUDA=1 but nvcc was not found")
    status=1
  else
    summary+=("cuda: configuration skipped (no nvcc)")
  fi
fi

run_config cpu -DATELIER_CUDA=OFF

# ---- Thread counts: the CPU suite (less the training-length tests) with 1, 3 and 7 pool threads. ----
if [[ "${ATELIER_THREAD_PASSES:-1}" == 1 ]]; then
  for threads in 1 3 7; do
    ATELIER_NUM_THREADS=$threads run_ctest "cpu, ATELIER_NUM_THREADS=$threads" build/cpu -LE long
  done
fi

# ---- Sanitizers: ASan+UBSan over the CPU suite and gradcheck, TSan over the suite; -O1, no benchmarks, no
# training-length tests (they take hours there). Each in its own build folder. The sanitizer flags come with
# -fno-sanitize-recover=all (CMakeLists.txt): ASan and UBSan end the program at their first report. ----
if [[ "${ATELIER_SANITIZERS:-1}" == 1 ]]; then
  sanitizer_args=(-DATELIER_CUDA=OFF -DATELIER_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1")
  build_type=RelWithDebInfo
  ctest_args=(-LE long)
  # ASan+UBSan with clang where it is installed: every other build is g++'s, and clang compiles some code
  # differently (it faulted on a reference to an unaligned vector that g++ read correctly, backends/cpu/simd.h);
  # the build then also stands for scripts/clang-check.sh on every file it compiles, and it compiles in three
  # quarters of g++'s time. CMake keeps a build folder's compiler: build/asan made by g++ stays g++'s.
  asan_compiler=g++ asan_c_compiler=gcc
  if command -v clang++ >/dev/null; then
    if [[ ! -f build/asan/CMakeCache.txt ]] || grep -q '^CMAKE_CXX_COMPILER:.*clang' build/asan/CMakeCache.txt; then
      asan_compiler=clang++ asan_c_compiler=clang
    fi
  fi
  CC="$asan_c_compiler" CXX="$asan_compiler" run_config asan "${sanitizer_args[@]}" -DATELIER_SANITIZE=address,undefined
  echo "=== [asan] gradcheck ==="
  gradcheck_log="$(mktemp)" start=$SECONDS
  if [[ -x build/asan/bin/gradcheck ]] && build/asan/bin/gradcheck >"$gradcheck_log" 2>&1; then
    summary+=("asan: gradcheck: $(tail -n 1 "$gradcheck_log")")
  else
    tail -n 30 "$gradcheck_log" || true
    summary+=("asan: gradcheck FAILED (see above)")
    status=1
  fi
  rm -f "$gradcheck_log"
  record_time "asan: gradcheck" "$start"
  # TSan: halt_on_error ends the program at its first report (exit 66), so a race fails the test where it happens,
  # also in a test that expects some other non-zero exit. 3 pool threads: more than the 2 cores of CI, so the
  # workers are preempted mid-chunk, and an odd count gives chunks of unequal size.
  # g++ 12's TSan cannot map its shadow memory when the kernel randomises mmap with more than 28 bits
  # ("FATAL: ThreadSanitizer: unexpected memory mapping"); there the tests run with address randomisation off.
  # The build runs the test program too (it lists the test cases).
  # TSan is the slowest pass (5-15x the Release time per test), so it leaves out the `heavy` tests: the doctest
  # cases of the suite "heavy" (ten seconds or more under a sanitizer; a lighter case covers the same threaded
  # code) and the command-line scripts, and builds no tools (they are for those scripts and for gradcheck).
  launcher=(env "TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1}" ATELIER_NUM_THREADS=3)
  if [[ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ]]; then
    launcher+=(setarch "$(uname -m)" -R)
  fi
  ctest_args=(-LE 'long|heavy')
  run_config tsan "${sanitizer_args[@]}" -DATELIER_SANITIZE=thread -DATELIER_BUILD_TOOLS=OFF
  launcher=()
  build_type=Release
  ctest_args=()
else
  summary+=("sanitizers: skipped (ATELIER_SANITIZERS=0)")
fi

# ---- BEGAN smoke run: `began train --smoke` (a few dozen steps of a tiny model on synthetic data, through the
# same code as a real run) must finish and leave every output of a run folder. ----
echo "=== [smoke] began train --smoke ==="
smoke_outputs_present() {
  local f
  for f in config.json metrics.csv losses.svg report.html samples/step_0000000.png samples/epoch_0001.png \
    samples/final.png checkpoints/step_0000036.safetensors; do
    [[ -s "$1/$f" ]] || { echo "smoke: $1/$f is missing"; return 1; }
  done
}
smoke_out="$(mktemp -d)/run" start=$SECONDS
if build/cpu/bin/began train --smoke --out "$smoke_out" && smoke_outputs_present "$smoke_out"; then
  summary+=("smoke: began train --smoke wrote every output ($smoke_out)")
else
  summary+=("smoke: FAILED (began train --smoke, see above)")
  status=1
fi
record_time smoke "$start"

# The libraries alone must not need the test, benchmark and tool packages. CMAKE_DISABLE_FIND_PACKAGE_<name> turns
# any find_package(<name> REQUIRED) into a configure error, so this configure fails if an option leaks one in.
echo "=== [lib] library-only configure and build (build/lib, $jobs jobs) ==="
lib_ok=0 start=$SECONDS
if cmake -S . -B build/lib -DCMAKE_BUILD_TYPE=Release -DATELIER_WERROR="$werror" -DATELIER_CUDA=OFF \
  -DATELIER_BUILD_TESTS=OFF -DATELIER_BUILD_BENCH=OFF -DATELIER_BUILD_TOOLS=OFF \
  -DCMAKE_DISABLE_FIND_PACKAGE_doctest=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON && cmake --build build/lib -j"$jobs"; then
  summary+=("lib: the libraries build without doctest, Google Benchmark and CLI11")
  lib_ok=1
else
  summary+=("lib: FAILED (library-only configure or build)")
  status=1
fi
record_time "lib: configure and build" "$start"
start=$SECONDS

# Packaging: install the library-only build and build a tiny find_package(atelier) project against it.
echo "=== [package] install build/lib and build tests/consumer against it ==="
rm -rf build/lib/install build/consumer  # nothing left from an earlier run: no stale header, no cached atelier_DIR
if [[ $lib_ok -eq 1 ]] && cmake --install build/lib --prefix build/lib/install >/dev/null &&
  cmake -S tests/consumer -B build/consumer -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$PWD/build/lib/install" >/dev/null &&
  cmake --build build/consumer -j"$jobs" >/dev/null && build/consumer/consumer; then
  summary+=("package: installed tree builds and runs a find_package(atelier) consumer (atelier::atelier, atelier::began)")
else
  summary+=("package: FAILED (install, configure, build or run of tests/consumer)")
  status=1
fi
record_time package "$start"

# clang: scripts/fuzz.sh builds the libraries with clang (libFuzzer), and CC=clang CXX=clang++ builds the whole
# tree; a GCC-only line or a clang-only warning would break those. build/asan (clang's, above) compiled most
# sources; the benchmarks, fuzz targets and package consumer it does not build are parsed here.
echo "=== [clang] a CPU-only build's sources parse warning-free with clang++ (scripts/clang-check.sh) ==="
start=$SECONDS
if ! command -v clang++ >/dev/null; then
  summary+=("clang: skipped (clang++ not found; ATELIER_SKIP_DEPS=1 kept it from being installed)")
elif [[ "${asan_compiler:-}" == clang++ && "$werror" == ON ]]; then
  # build/asan compiled most sources with clang++ under -Werror: the check parses the rest.
  if scripts/clang-check.sh --skip-compiled build/asan; then
    summary+=("clang: the sources build/asan did not compile (benchmarks, fuzz targets, ...) parse warning-free with clang++")
  else
    summary+=("clang: FAILED (scripts/clang-check.sh --skip-compiled build/asan, see above)")
    status=1
  fi
elif scripts/clang-check.sh; then
  summary+=("clang: the libraries, tools, tests, fuzz targets and benchmarks parse warning-free with clang++")
else
  summary+=("clang: FAILED (scripts/clang-check.sh, see above)")
  status=1
fi
record_time clang "$start"

echo
echo "=== time per phase (total $SECONDS s) ==="
printf '%s\n' "${timings[@]}"
echo
echo "=== summary ==="
printf '%s\n' "${summary[@]}"
if [[ $status -ne 0 ]]; then
  echo "FAILED"
else
  echo "OK"
fi
exit "$status"

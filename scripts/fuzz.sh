#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (clang, -fsanitize=fuzzer,address,undefined, in build/fuzz) and runs
# each for SECONDS seconds, two at a time, starting from the committed seed corpus tests/fuzz/corpus/<target>/.
# The corpus each run grows is kept in build/fuzz/corpus/<target>/ (never written into the source tree); crash
# inputs go to build/fuzz/findings/<target>/. Prints, per target, the executions, the corpus size and the
# findings, and exits non-zero if any target found something.
#
#   scripts/fuzz.sh [SECONDS]      (default 60; docs/reliability.md records the 10-minute runs)
#
# Environment:
#   ATELIER_FUZZ_TARGETS="fuzz_idx ..."  run only these targets (default: every tests/fuzz/fuzz_*.cpp)
#   ATELIER_FUZZ_JOBS=N                  targets run at once (default 2)
#   ATELIER_SKIP_DEPS=1                  do not check/install the Debian packages
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -lt 1 ]]; then
  echo "fuzz.sh: SECONDS must be a positive whole number, got '$seconds'" >&2
  exit 2
fi

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
# The fuzzers need clang and its runtime libraries (libFuzzer and the sanitizers), on top of the usual packages;
# they are added here only, not to what CI installs.
ATELIER_APT_PACKAGES+=(clang libclang-rt-dev)
atelier_install_deps

build=build/fuzz
# Warnings are not errors here: -Werror is the g++ builds' gate (scripts/test.sh), and clang knows other warnings.
launcher=""
if command -v ccache >/dev/null; then launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"; fi
echo "=== [fuzz] configure and build ($build) ==="
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATELIER_CUDA=OFF \
  -DATELIER_BUILD_TESTS=OFF -DATELIER_BUILD_BENCH=OFF -DATELIER_BUILD_TOOLS=OFF -DATELIER_BUILD_FUZZ=ON \
  -DATELIER_SANITIZE=address,undefined -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" -DATELIER_WERROR=OFF $launcher >/dev/null
if [[ -n "${ATELIER_FUZZ_TARGETS:-}" ]]; then
  read -r -a targets <<<"$ATELIER_FUZZ_TARGETS"
else
  targets=()
  for src in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi
# The fuzz targets and the seed writer only (with the libraries they link: atelier, and atelier_began for images).
cmake --build "$build" -j"$(nproc)" --target fuzz_make_seeds "${targets[@]}"
rm -rf "$build/findings"  # this run's findings only (the grown corpus is kept)

# run_target NAME: one fuzzer for `seconds`, its log in build/fuzz/logs/NAME.log.
run_target() {
  local name="$1" corpus="$build/corpus/$1" findings="$build/findings/$1/"
  mkdir -p "$corpus" "$findings" "$build/logs"
  # -rss_limit_mb: a reader that allocates what a header merely claims shows up as an out-of-memory finding.
  # -max_len: room for a safetensors header with a few tensors and a gzip'd IDX file.
  # (and for the 16x16 JPEG and PNG seeds of fuzz_image_folder, under 2 kB each)
  "$build/bin/$name" "$corpus" "tests/fuzz/corpus/$name" -max_total_time="$seconds" -max_len=8192 \
    -rss_limit_mb=2048 -timeout=20 -artifact_prefix="$findings" -print_final_stats=1 \
    >"$build/logs/$name.log" 2>&1
}

echo "=== [fuzz] ${targets[*]}: $seconds s each, ${ATELIER_FUZZ_JOBS:-2} at a time ==="
status=0
pids=()
names=()
for name in "${targets[@]}"; do
  [[ -x "$build/bin/$name" ]] || { echo "fuzz.sh: no target $name in $build/bin" >&2; exit 2; }
  run_target "$name" &
  pids+=($!)
  names+=("$name")
  while [[ "$(jobs -rp | wc -l)" -ge "${ATELIER_FUZZ_JOBS:-2}" ]]; do wait -n || true; done
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then status=1; fi
done

echo
echo "=== [fuzz] summary ($seconds s per target) ==="
for name in "${names[@]}"; do
  log="$build/logs/$name.log"
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
  corpus_files="$(find "$build/corpus/$name" -type f | wc -l)"
  found="$(find "$build/findings/$name" -type f | wc -l)"
  echo "$name: $runs executions, corpus $corpus_files files, $found findings (log $log)"
  [[ "$found" -eq 0 ]] || status=1
done
exit "$status"

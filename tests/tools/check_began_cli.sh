#!/usr/bin/env bash
# The `began train` command line (ctest entry began_cli): `began --version` names the build; --help lists every flag
# with its default; unknown flags and bad values print one line and exit 2 before any work (no run folder appears);
# SIGINT and SIGTERM write a checkpoint and exit 130 / 143, and --resume continues from it.
#
#   tests/tools/check_began_cli.sh build/cpu/bin/began
set -uo pipefail

began="$1"
# shellcheck source=tests/tools/check_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/check_lib.sh"

# --help: every flag, with its default.
help="$("$began" train --help)" || fail "began train --help exited $?"
for flag in --data=fashion-mnist --data-dir= --synthetic-size= --image-size=32 --channels=1 --n=32 --h=64 \
  --batch=16 --gamma=0.5 --lambda-k=0.001 --lr=0.0001 --beta1=0.5 --beta2=0.999 --lr-window=0 \
  --lr-threshold=0.001 --lr-factor=0.5 --lr-min=2e-05 --epochs= --steps=0 --out= --seed=0 --threads=0 \
  --checkpoint-every= --sample-every= --sample-count= --device=cpu --precision=fp32 --progress-seconds=; do
  name="${flag%%=*}" value="${flag#*=}"
  grep -Eq -- "^ *${name} [A-Z]+=${value}" <<<"$help" || fail "--help does not list ${name} with default '${value}'"
done
# A resume keeps the checkpoint's thread count over ATELIER_NUM_THREADS (bit-exact): the help says so.
grep -q -- "--threads INT=0 .*a --resume without it keeps the checkpoint's count" <<<"$help" ||
  fail "--help does not say that a resume keeps the checkpoint's thread count"
for flag in --resume --skip --tanh --smoke; do
  grep -Eq -- "^ *${flag}( |$)" <<<"$help" || fail "--help does not list ${flag}"
done

# --version: the build, the vector registers the CPU kernels were compiled for and the CUDA backend, exit 0.
version="$("$began" --version)" || fail "began --version exited $?"
grep -Eq "^began .*\(atelier [0-9]+\.[0-9]+\.[0-9]+\)" <<<"$version" || fail "--version lacks the build: $version"
grep -Eq "CPU kernels: (AVX-512|AVX2|AVX|SSE2), [0-9]+ vector registers of (16|32|64) bytes" <<<"$version" ||
  fail "--version lacks the CPU kernels' target: $version"
grep -Eq "CUDA backend: (built in|not built)" <<<"$version" || fail "--version lacks the CUDA backend: $version"

# Bad command lines: exit 2, one line on stderr, nothing created.
expect_refused() {
  local what="$1" fragment="$2"
  shift 2
  "$began" train --out "$tmp/refused" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [[ $rc -eq 2 ]] || fail "$what: exit $rc, expected 2"
  [[ $(wc -l <"$tmp/err") -eq 1 ]] || fail "$what: expected one line on stderr, got: $(cat "$tmp/err")"
  grep -q -- "$fragment" "$tmp/err" || fail "$what: stderr lacks '$fragment': $(cat "$tmp/err")"
  [[ ! -e "$tmp/refused" ]] || fail "$what: the run folder was created"
}
expect_refused "an unknown flag" "--bogus" --bogus
expect_refused "a value that is not a number" "--batch" --batch abc
expect_refused "--batch 0" "--batch must be >= 1" --batch 0
expect_refused "--data lfw" "--data: 'lfw'" --data lfw
expect_refused "--lr-factor 1.5" "--lr-factor" --lr-factor 1.5
expect_refused "--lr-min above --lr" "--lr-min 0.001 is above --lr 1e-04" --lr-min 1e-3
expect_refused "--smoke with --resume" "--smoke" --smoke --resume "$tmp"
# An empty --resume (an unset variable in a script) is refused, not taken as "no --resume": a fresh run at --out.
expect_refused "an empty --resume" "--resume: the folder name is empty" --resume "" --data synthetic --synthetic-size 8 \
  --batch 4 --n 4 --h 4 --steps 1
expect_refused "--resume of a folder that does not exist" "--resume $tmp/refused: no such folder" --resume "$tmp/refused"
# Data that cannot be used is read, and refused, before the run folder is made.
mkdir -p "$tmp/no-images" "$tmp/empty-idx"
touch "$tmp/empty-idx/train-images-idx3-ubyte.gz" "$tmp/empty-idx/train-labels-idx1-ubyte.gz"
expect_refused "an image folder without images" "no image files" --data folder --data-dir "$tmp/no-images"
# --smoke without --out makes its own folder (under $TMPDIR): a refused run removes it again.
mkdir -p "$tmp/smoke-tmp"
TMPDIR="$tmp/smoke-tmp" "$began" train --smoke --data folder --data-dir "$tmp/no-images" >/dev/null 2>"$tmp/err"
rc=$?
[[ $rc -eq 2 ]] && grep -q "no image files" "$tmp/err" || fail "--smoke refused: exit $rc, $(cat "$tmp/err")"
[[ -z "$(ls -A "$tmp/smoke-tmp")" ]] || fail "--smoke refused: left $(ls -A "$tmp/smoke-tmp") in \$TMPDIR"
expect_refused "empty Fashion-MNIST files" "read_idx: '$tmp/empty-idx/train-images-idx3-ubyte.gz': truncated" \
  --data-dir "$tmp/empty-idx"

"$began" train --out /proc/began-run --data synthetic >/dev/null 2>"$tmp/err"
rc=$?
[[ $rc -eq 2 && $(wc -l <"$tmp/err") -eq 1 ]] || fail "an unwritable --out: exit $rc, stderr: $(cat "$tmp/err")"

# --device cuda: one clear line and exit 2 until the CUDA backend can run a step (then it trains).
"$began" train --smoke --out "$tmp/cuda" --device cuda >/dev/null 2>"$tmp/err"
rc=$?
if [[ $rc -ne 0 ]]; then
  [[ $rc -eq 2 && $(wc -l <"$tmp/err") -eq 1 ]] && grep -q -- "--device cuda" "$tmp/err" ||
    fail "--device cuda: exit $rc, stderr: $(cat "$tmp/err")"
fi

tiny=(--data synthetic --synthetic-size 64 --n 4 --h 4 --batch 4 --progress-seconds 1000)
# A run too short for the learning rate ever to change (the schedule needs two windows) says so at its start.
"$began" train "${tiny[@]}" --steps 20 --lr-window 11 --out "$tmp/short" >"$tmp/out" 2>&1 || fail "a short run: $(cat "$tmp/out")"
grep -q "^note: the learning rate stays at 0.0001 for this run's 20 steps: with --lr-window 11 it can first change at step 22," \
  "$tmp/out" || fail "a run shorter than two --lr-window windows: no note: $(cat "$tmp/out")"
"$began" train "${tiny[@]}" --steps 20 --lr-window 10 --out "$tmp/long" >"$tmp/out" 2>&1 || fail "a run: $(cat "$tmp/out")"
! grep -q "learning rate stays" "$tmp/out" || fail "a run of exactly two windows: $(cat "$tmp/out")"

# Out of memory during a step names the step and the settings that asked for it, and what would need less. The
# address space is capped at 1 GB (prlimit); not under a sanitizer, whose runtime reserves terabytes of it. A
# sanitizer build's program names __asan_init or __tsan_init: g++ links the runtime as a shared library (the name is
# an import), clang links it in (the name is defined there), so ldd alone misses clang's. (grep reads the file,
# not a pipe: grep -q exits at its first match, and under pipefail a writer still writing dies of SIGPIPE and fails
# the condition; under two tests at once it did, and the check ran in TSan.)
# The batch needs about 2.2 GB a step (began/model.h's step_memory): above the cap, and below what any machine this
# runs on has free, so that the check of free memory before the run (exit 2) lets it start.
if grep -aqE '__(a|t)san_init' "$began"; then
  echo "note: a sanitizer build: the out-of-memory check not run"
else
  (ulimit -v 1000000 && exec "$began" train --data synthetic --synthetic-size 1024 --batch 1024 --steps 1 \
    --progress-seconds 1000 --out "$tmp/oom") >"$tmp/out" 2>&1
  rc=$?
  [[ $rc -eq 1 ]] && grep -q "^began: error: step 1 with --batch 1024 (data synthetic, image_size 32, .*, n 32, h 64.*) on cpu: \
cpu allocator: out of memory allocating .*; a run with a smaller --batch, --n or --image-size needs less memory$" "$tmp/out" ||
    fail "out of memory in a step: exit $rc, $(tail -c 600 "$tmp/out")"
  # And the sample grid, all of --sample-count's images in one forward pass (10,000 at 256x256 are 2.6 GB).
  (ulimit -v 1000000 && exec "$began" train --data synthetic --synthetic-size 8 --batch 4 --n 1 --h 4 \
    --image-size 256 --sample-count 10000 --steps 1 --progress-seconds 1000 --out "$tmp/oom-grid") >"$tmp/out" 2>&1
  rc=$?
  [[ $rc -eq 1 ]] && grep -q "^began: error: the sample grid $tmp/oom-grid/samples/step_0000000.png of --sample-count \
10000 (data synthetic, image_size 256, .*) on cpu: cpu allocator: out of memory .*; a smaller --sample-count needs less \
memory$" "$tmp/out" || fail "out of memory in a sample grid: exit $rc, $(tail -c 600 "$tmp/out")"
fi

# Signals: a checkpoint at the next step boundary, exit 128 + signal, then --resume continues.
for sig in INT TERM; do
  run="$tmp/signal-$sig"
  "$began" train "${tiny[@]}" --steps 1000000 --out "$run" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    [[ -f "$run/metrics.csv" && $(wc -l <"$run/metrics.csv") -ge 4 ]] && break
    sleep 0.1
  done
  kill "-$sig" "$pid"
  wait "$pid"
  rc=$?
  expected=$([[ $sig == INT ]] && echo 130 || echo 143)
  [[ $rc -eq $expected ]] || fail "SIG$sig: exit $rc, expected $expected"
  rows=$(($(wc -l <"$run/metrics.csv") - 1))
  [[ -f "$run/checkpoints/$(printf 'step_%07d.safetensors' "$rows")" ]] ||
    fail "SIG$sig: no checkpoint of step $rows (the last metrics row)"
  "$began" train --resume "$run" --steps $((rows + 2)) >/dev/null 2>"$tmp/err" || fail "resume after SIG$sig: $(cat "$tmp/err")"
  [[ $(wc -l <"$run/metrics.csv") -eq $((rows + 3)) ]] || fail "resume after SIG$sig: metrics.csv has the wrong rows"
done

finish "began train command line"

#!/usr/bin/env bash
# Every subcommand of bin/began and bin/gradcheck refuses a bad command line with one short line on stderr and
# exit 2, before any work (ctest entry cli_errors): numbers that do not fit their type or range (no wrapping, no
# 309-digit bounds), unknown subcommands named, paths checked first (an unwritable --out costs nothing). With a
# third, fourth and fifth argument, bench_train's, bench_ops' and bench_op_table's own flags too (the benchmarks are
# an optional part of the build).
#
#   tests/tools/check_cli_errors.sh build/cpu/bin/began build/cpu/bin/gradcheck [build/cpu/bin/bench_train \
#     build/cpu/bin/bench_ops build/cpu/bin/bench_op_table]
set -uo pipefail

began="$1"
gradcheck="$2"
bench_train="${3:-}"
bench_ops="${4:-}"
bench_op_table="${5:-}"
report="$(realpath "$(dirname "${BASH_SOURCE[0]}")/../../scripts/check-report.sh")"
# shellcheck source=tests/tools/check_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/check_lib.sh"
cd "$tmp" || exit 1  # a command that wrongly starts work writes here, not into the source tree

# refused PROGRAM FRAGMENT ARGS...: exit 2 within seconds, exactly one line on stderr holding FRAGMENT, at most
# 200 characters, nothing written to the current folder.
refused() {
  local program="$1" fragment="$2"
  shift 2
  timeout 20 "$program" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? what="$(basename "$program") $*"
  what="${what:0:100}"
  [[ $rc -eq 2 ]] || fail "$what: exit $rc, expected 2 (stderr: $(head -c 300 "$tmp/err"))"
  [[ $(wc -l <"$tmp/err") -eq 1 ]] || fail "$what: expected one line on stderr, got: $(head -c 600 "$tmp/err")"
  [[ $(wc -c <"$tmp/err") -le 200 ]] || fail "$what: a line of $(wc -c <"$tmp/err") characters: $(head -c 300 "$tmp/err")"
  grep -qF -- "$fragment" "$tmp/err" || fail "$what: stderr lacks '$fragment': $(head -c 300 "$tmp/err")"
  [[ -z "$(ls -A "$tmp" | grep -v -x -e out -e err)" ]] || fail "$what: wrote $(ls -A "$tmp")"
}

huge="$(printf '9%.0s' {1..400})"
# Unknown subcommands are named; a missing one is asked for.
refused "$began" "unknown subcommand 'bogus'" bogus
refused "$began" "unknown subcommand 'trian'" trian --epochs 1
refused "$began" "subcommand" --epochs 1

# Numbers, on every subcommand: out of the type's range, negative for unsigned, not whole, not finite, huge.
for sub in train classify-train; do
  refused "$began" "--seed: '-1' is out of range: must be from 0 to 18446744073709551615" "$sub" --seed -1
  refused "$began" "--epochs: '1e20' is not a whole number" "$sub" --epochs 1e20
  refused "$began" "--seed: '999999999999999999999999...' is out of range" "$sub" --seed "$huge"
  refused "$began" "--lr: '1e999' is outside the range of a double" "$sub" --lr 1e999
  refused "$began" "--lr: 'nan' is not a number" "$sub" --lr nan
done
refused "$began" "--limit: '99999999999999999999' is out of range: must be from -1 to 9223372036854775807" \
  classify-train --limit 99999999999999999999
refused "$began" "--limit: '99999999999999999999' is out of range" classify-eval --limit 99999999999999999999
refused "$began" "--limit: '-2' is out of range" classify-eval --limit -2
refused "$began" "--lr: '-1' is out of range: must be above 0 and at most 10" classify-train --lr -1
refused "$began" "--batch-size: '0' is out of range: must be from 1 to 60000" classify-train --batch-size 0
refused "$began" "--limit 10 is less than --batch-size 64" classify-train --limit 10
refused "$began" "--steps: '99999999999999999999' is out of range" train --steps 99999999999999999999
refused "$began" "--threads: '99999999999' is out of range" train --threads 99999999999
refused "$began" "--batch: '0x10' is not a whole number" train --batch 0x10
refused "$began" "--gamma: '1e400' is outside the range of a double" train --gamma 1e400
refused "$began" "--lr must be finite and > 0" train --lr 0 --out "$tmp/run"
refused "$began" "--epochs must be >= 1" train --epochs 0 --out "$tmp/run"

# Paths, before any work: the output's folder, an output that is a folder, missing inputs.
refused "$began" "--out /nonexistent-atelier/w.safetensors: the folder /nonexistent-atelier does not exist" \
  classify-train --out /nonexistent-atelier/w.safetensors
refused "$began" "--out $tmp: is a folder" classify-train --out "$tmp"
refused "$began" "--out w.bin: not a .safetensors file name" classify-train --out w.bin
refused "$began" "--data-dir /nonexistent-atelier: no such folder" classify-train --data-dir /nonexistent-atelier
refused "$began" "--data-dir $began: not a folder" classify-train --data-dir "$began"
refused "$began" "--data-dir $began: not a folder" train --data folder --data-dir "$began" --out "$tmp/run"
# The default weights are a path in the source tree: from elsewhere the error says so (this script runs in $tmp).
refused "$began" "no such readable file (the default, relative to the repository root: run from there or pass --weights)" \
  classify-eval
refused "$began" "does not exist (the default, relative to the repository root: run from there or pass --out)" \
  classify-train
refused "$began" "--weights /nonexistent-atelier.safetensors: no such readable file" \
  classify-eval --weights /nonexistent-atelier.safetensors
refused "$began" "--weights $tmp: is a folder, not a file" classify-eval --weights "$tmp"
refused "$began" "--out /proc/began-run" train --out /proc/began-run --data synthetic
# A run writes several files and folders into --out: never into the root folder (root could, and would have).
refused "$began" "--out / is the root folder: give the run a folder of its own" train --out / --data synthetic
refused "$began" "--out /tmp/.. is the root folder" train --out /tmp/.. --data synthetic
# A name the system cannot take is refused naming the part at fault, not with a bare "File name too long".
long="$(printf 'n%.0s' {1..300})"
refused "$began" "part 4 of the path is 300 bytes long, more than the 255 a file name can have" \
  train --out "$tmp/$long/run"
refused "$began" "n...: part 1 of the path is 300 bytes long" train --data folder --data-dir "$(dirname "$began")" --out run --cache "$long"
refused "$began" "part 1 of the path is 304 bytes long, more than the 255 a file name can have" \
  sample --checkpoint "$began" --out "$long.png" --grid
refused "$began" "bytes long, more than the 4095 a path can have" \
  train --out "$(printf "$long/%.0s" {1..14})"
# A step that cannot fit in this machine's memory is refused before the run folder is made (the system's OOM killer
# would end it mid-way): 4096x4096 images need terabytes.
refused "$began" "--image-size 4096 --n 32 --batch 16: a training step needs about" \
  train --data synthetic --image-size 4096 --out run
# A flag given twice is named, in plain words.
refused "$began" "--steps was given 2 times; give it once" train --steps 1 --steps 2

# Inputs that cannot be read are refused before any work, as `began train` refuses its data: classify-eval and
# classify-train read their IDX files (and classify-eval its weights) with the checks.
bad_idx="$(mktemp -d)"
for name in t10k-images-idx3 t10k-labels-idx1 train-images-idx3 train-labels-idx1; do
  printf 'not an IDX file' >"$bad_idx/$name-ubyte.gz"
done
weights="$(realpath "$(dirname "${BASH_SOURCE[0]}")/../../began/eval/fmnist_classifier.safetensors")"
refused "$began" "-ubyte.gz': bad magic number" classify-eval --weights "$weights" --data-dir "$bad_idx"
refused "$began" "-ubyte.gz': bad magic number" classify-train --data-dir "$bad_idx" --out "$bad_idx/w.safetensors"
refused "$began" "'$began': header length" classify-eval --weights "$began"  # not safetensors: refused, named
rm -rf "$bad_idx"

# The checkpoint tools (sample, reconstruct, interpolate, eval): the checkpoint asked for and checked first, then
# the device, the numbers and the outputs; the program itself stands in for a readable checkpoint file (the
# checks refuse before reading it).
for sub in sample reconstruct interpolate eval; do
  out=(--out x.png)
  [[ $sub == eval ]] && out=()  # eval prints its numbers
  refused "$began" "--checkpoint is required" "$sub" "${out[@]}"
  refused "$began" "--checkpoint /nonexistent-atelier.safetensors: no such readable file" \
    "$sub" --checkpoint /nonexistent-atelier.safetensors "${out[@]}"
  refused "$began" "--checkpoint $tmp: is a folder, not a file" "$sub" --checkpoint "$tmp" "${out[@]}"
  refused "$began" "--device: 'tpu' is not a device (cpu or cuda)" "$sub" --checkpoint "$began" "${out[@]}" --device tpu
  refused "$began" "--bogus" "$sub" --checkpoint "$began" "${out[@]}" --bogus
done
for sub in sample reconstruct interpolate; do
  grid=()
  [[ $sub == sample ]] && grid=(--grid)
  refused "$began" "--out /nonexistent-atelier/x.png: the folder /nonexistent-atelier does not exist" \
    "$sub" --checkpoint "$began" --out /nonexistent-atelier/x.png "${grid[@]}"
done
# A grid is a PNG: any other name is refused, so that a slip ('--out' given the checkpoint's own path, as
# completion offers it) cannot overwrite the run's checkpoint or another file with a picture.
for sub in sample reconstruct interpolate; do
  grid=()
  [[ $sub == sample ]] && grid=(--grid)
  refused "$began" "--out $began: not a .png file name (the grid is written as PNG)" \
    "$sub" --checkpoint "$began" --out "$began" "${grid[@]}"
done
refused "$began" "--count: '0' is out of range: must be from 1 to 100000" sample --checkpoint "$began" --out s --count 0
refused "$began" "--count: '1e3' is not a whole number" sample --checkpoint "$began" --out s --count 1e3
refused "$began" "--seed: '-1' is out of range" sample --checkpoint "$began" --out s --seed -1
refused "$began" "is a file; without --grid --out names a folder" sample --checkpoint "$began" --out "$began"
# A .png name without --grid is a forgotten --grid, not a folder to make under that name.
refused "$began" "--out s.png: a .png name, but without --grid --out names a folder" sample --checkpoint "$began" --out s.png
refused "$began" "--count: '10001' is out of range: must be from 1 to 10000" \
  reconstruct --checkpoint "$began" --out r.png --count 10001
refused "$began" "--points: '1' is out of range: must be from 2 to 1000" \
  interpolate --checkpoint "$began" --out i.png --points 1
# Each flag in range, their product not: one grid of 2,000,000 images (8 GB of floats at 32x32) is refused first.
refused "$began" "--pairs 1000 and --points 1000 make 2000000 images in one grid, more than 100000" \
  interpolate --checkpoint "$began" --out i.png --pairs 1000 --points 1000
refused "$began" "--real: At least 2 required but received 1" interpolate --checkpoint "$began" --out i.png --real 1
refused "$began" "--real: '-3' is out of range" interpolate --checkpoint "$began" --out i.png --real -3 4
# Flags that do nothing together are refused, not silently ignored: --pairs walks random points, --real two images.
refused "$began" "--pairs excludes --real" interpolate --checkpoint "$began" --out i.png --real 0 1 --pairs 3
refused "$began" "--fit-steps requires --real" interpolate --checkpoint "$began" --out i.png --fit-steps 10
refused "$began" "--fit-lr requires --real" interpolate --checkpoint "$began" --out i.png --fit-lr 0.1
refused "$began" "--data-dir requires --real" interpolate --checkpoint "$began" --out i.png --data-dir /tmp
refused "$began" "--data-dir /nonexistent-atelier: no such folder" \
  reconstruct --checkpoint "$began" --out x.png --data-dir /nonexistent-atelier
refused "$began" "--data-dir /nonexistent-atelier: no such folder" \
  interpolate --checkpoint "$began" --out x.png --real 0 1 --data-dir /nonexistent-atelier
refused "$began" "--fit-lr: '0' is out of range: must be above 0" \
  interpolate --checkpoint "$began" --out i.png --real 0 1 --fit-lr 0
refused "$began" "--fit-steps: '99999999999999999999' is out of range" \
  interpolate --checkpoint "$began" --out i.png --real 0 1 --fit-steps 99999999999999999999
refused "$began" "--classifier /nonexistent-atelier.safetensors: no such readable file" \
  eval --checkpoint "$began" --classifier /nonexistent-atelier.safetensors
refused "$began" "--count: '1' is out of range: must be from 2 to 10000" eval --checkpoint "$began" --count 1
refused "$began" "--data-dir /nonexistent-atelier: no such folder" \
  eval --checkpoint "$began" --data-dir /nonexistent-atelier

# bin/gradcheck: one optional filter; a filter matching no row, a flag or a second argument is refused.
refused "$gradcheck" "no row name contains 'no-such-op'" no-such-op
refused "$gradcheck" "unknown option '--bogus'" --bogus
refused "$gradcheck" "expected at most one argument" add mul
refused "$gradcheck" "is not a device" --device tpu add
refused "$gradcheck" "--device needs a value (cpu or cuda)" --device
refused "$gradcheck" "is not a device" add --device tpu  # the flag after the filter is still the flag
refused "$gradcheck" "is not a device" --device=tpu
"$gradcheck" --help >/dev/null 2>&1 || fail "gradcheck --help exited $?"

# A valid line still works: a tiny gradcheck row, with --device before or after the filter, or as --device=cpu.
for line in "add" "--device cpu add" "add --device cpu" "--device=cpu add"; do
  # shellcheck disable=SC2086  # the line is split into its words on purpose
  "$gradcheck" $line >"$tmp/out" 2>&1 && grep -q "passed, 0 failed" "$tmp/out" || fail "gradcheck $line: $(cat "$tmp/out")"
done
# A bad ATELIER_CONV_ALGO is refused by both programs before any work; a good one runs the conv rows through it.
ATELIER_CONV_ALGO=wino8 refused "$gradcheck" "'wino8' is not one of auto, im2col, wino2, wino4" add
ATELIER_CONV_ALGO=wino8 refused "$began" "'wino8' is not one of auto, im2col, wino2, wino4" train \
  --out "$tmp/run"
for algo in wino2 wino4; do
  ATELIER_CONV_ALGO=$algo "$gradcheck" conv2d/3x3 >"$tmp/out" 2>&1 && grep -q "passed, 0 failed" "$tmp/out" ||
    fail "ATELIER_CONV_ALGO=$algo gradcheck conv2d/3x3: $(cat "$tmp/out")"
done

# bench_train: its flags are strict numbers (strtoll took 99999999999999999999 as 2^63 - 1 steps: a run without
# end) and a flag given last without its value is named, not called unknown by Google Benchmark (exit 1).
if [[ -n "$bench_train" ]]; then
  refused "$bench_train" "--profile '99999999999999999999' is out of range" --profile 99999999999999999999
  refused "$bench_train" "--steps '0' is out of range: must be from 1" --steps 0
  refused "$bench_train" "--steps ' 5' is not a whole number" --steps " 5"
  refused "$bench_train" "bench_train: --profile needs a value" --benchmark_filter=nothing --profile
  refused "$bench_train" "bench_train: --device needs a value" --device
  refused "$bench_train" "--winograd-chunk-tiles '0' is out of range: must be from 1" --winograd-chunk-tiles 0
  refused "$bench_train" "--winograd-chunk-tiles '1073741825' is out of range: must be from 1 to 1073741824" \
    --winograd-chunk-tiles 1073741825
  refused "$bench_train" "--conv-workspace-mib '1048577' is out of range: must be from 1 to 1048576" \
    --conv-workspace-mib 1048577
fi
# Their --help lists their own flags (Google Benchmark's help knows only its own), then Google Benchmark's.
lists_flags() {
  local program="$1"
  shift
  timeout 20 "$program" --help >"$tmp/out" 2>&1
  local rc=$?
  [[ $rc -eq 0 ]] || fail "$(basename "$program") --help: exit $rc"
  for flag in "$@" --benchmark_filter; do
    grep -q -- "^ *\[\?$flag\b" "$tmp/out" ||
      fail "$(basename "$program") --help does not list $flag: $(head -c 600 "$tmp/out")"
  done
}
[[ -z "$bench_train" ]] ||
  lists_flags "$bench_train" --device --steps --warmup-steps --precision --cuda-graph --profile --conv-workspace-mib \
    --winograd-chunk-tiles
[[ -z "$bench_ops" ]] || lists_flags "$bench_ops" --device
if [[ -n "$bench_op_table" ]]; then
  lists_flags "$bench_op_table" --device
  refused "$bench_op_table" "bench_op_table: --device 'gpu' is not a device (cpu or cuda)" --device gpu
fi

# scripts/check-report.sh: its screenshot replaces the file at OUT_PNG, so only a .png name is taken (a slip such as
# RUN_DIR/report.html would lose the report), and the window size is a whole number; both before the browser.
refused "$report" "OUT_PNG 'run/report.html' is not a .png file name" run run/report.html
refused "$report" "OUT_PNG '$tmp' is not a .png file name" run "$tmp"
CHECK_REPORT_WIDTH=12ab refused "$report" "CHECK_REPORT_WIDTH=12ab is not a whole number" run
CHECK_REPORT_HEIGHT=0 refused "$report" "CHECK_REPORT_HEIGHT=0 is not a whole number" run
rm -f "$tmp/out" "$tmp/err"

finish "cli_errors"

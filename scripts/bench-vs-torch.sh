#!/usr/bin/env bash
# Times atelier against PyTorch on the CPU, side by side, under the same conditions, and prints one table.
#
#   scripts/bench-vs-torch.sh [REGEX]           the op benchmarks: bench/bench_ops.cpp against
#                                               bench/peers/ops_torch.py (same names, same shapes)
#   scripts/bench-vs-torch.sh --began [REGEX]   BEGAN's training step: bench/bench_train.cpp against
#                                               bench/peers/began_step_torch.py --bench, NCHW and channels-last
#   scripts/bench-vs-torch.sh --op-table [REGEX]
#                                               what a recorded op costs: bench/bench_op_table.cpp (the op
#                                               table's rows at their own tiny shapes, forward and backward)
#                                               against bench/peers/op_table_torch.py (the rows it has)
# REGEX filters the benchmark names (ops default: all; --op-table default: the rows op_table_torch.py has; --began
# default: the 32x32 C=1 n=32 and the 64x64 C=3 n=64 steps, h=64, batch 16). ratio = PyTorch median / atelier
# median: above 1 means atelier is faster. For --began it is against PyTorch's faster layout.
#
# What makes the comparison fair (docs/benchmarks.md, "Method"):
#   - the same glibc malloc settings on both sides (BENCH_MALLOC). PyTorch's CPU allocator is plain malloc; with
#     glibc's defaults every buffer above the dynamic mmap threshold (at most 32 MiB) is mmap'ed and unmapped on
#     each call, so each call page-faults fresh memory, while atelier's caching allocator keeps its blocks. The
#     default here raises the thresholds so that freed memory stays in the process, on both sides.
#   - the same thread count: ATELIER_NUM_THREADS for atelier, torch.set_num_threads for PyTorch (and
#     OMP_NUM_THREADS / MKL_NUM_THREADS for both);
#   - both sides warmed up (WARMUP seconds per op; WARMUP_STEPS untimed steps for --began);
#   - interleaved rounds: atelier round 1, PyTorch round 1, atelier round 2, ... so that a change in the machine's
#     load hits both; each side's figure is reported as the minimum and the median over the rounds;
#   - the load average printed before and after (on a 2-core machine one other busy process halves the 2-thread
#     figures: check it).
#
# Environment:
#   ATELIER_NUM_THREADS  threads for both sides (default 2)
#   BENCH_MALLOC         raised (default): GLIBC_TUNABLES=$BENCH_MALLOC_TUNABLES for both sides;
#                        default: glibc's own settings (GLIBC_TUNABLES unset) for both sides;
#                        inherit: whatever GLIBC_TUNABLES the caller has, for both sides
#   BENCH_MALLOC_TUNABLES  the raised setting (default glibc.malloc.mmap_threshold=1073741824:
#                        glibc.malloc.trim_threshold=4294967296: buffers up to 1 GiB come from the heap and up to
#                        4 GiB of free heap is kept)
#   PYTHON               interpreter with torch (default: the environment of scripts/torch-venv.sh, PyTorch from
#                        PyPI, at $ATELIER_TORCH_VENV or .venv-torch; PYTHON=/usr/bin/python3 for Debian's 1.13)
#   ATELIER_TORCH_VENV   where that environment is (default .venv-torch in the repository)
#   BUILD_DIR            atelier build directory (default build/cpu; configured as Release when it has no
#                        CMakeCache.txt; the bench program is brought up to date unless SKIP_BUILD=1)
#   ROUNDS               interleaved rounds (default 3)
#   REPETITIONS          ops: repetitions per benchmark and round, the round's figure is their median (default 3)
#   MIN_TIME             ops: seconds per repetition (default 0.5)
#   WARMUP               ops: seconds of warm-up per benchmark and round, both sides (default 0.2)
#   STEPS                --began: timed steps per round, the round's figure is their median (default 5)
#   WARMUP_STEPS         --began: untimed steps before them, both sides (default 2)
#   OUT_DIR              where the raw JSON and logs of every round go (default: a temporary directory, removed)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
  echo "bench-vs-torch: $*" >&2
  exit 1
}
say() { echo "bench-vs-torch: $*" >&2; }

mode=ops
filter=""
for arg in "$@"; do
  case "$arg" in
    --began) mode=began ;;
    --op-table) mode=op_table ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*) die "unknown option '$arg' (--began, --op-table, --help)" ;;
    *)
      [[ -z "$filter" ]] || die "one REGEX at most, got '$filter' and '$arg'"
      filter="$arg"
      ;;
  esac
done

threads="${ATELIER_NUM_THREADS:-2}"
build="${BUILD_DIR:-build/cpu}"
rounds="${ROUNDS:-3}"
reps="${REPETITIONS:-3}"
min_time="${MIN_TIME:-0.5}"
warmup="${WARMUP:-0.2}"
steps="${STEPS:-5}"
warmup_steps="${WARMUP_STEPS:-2}"
malloc="${BENCH_MALLOC:-raised}"
tunables="${BENCH_MALLOC_TUNABLES:-glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967296}"

for pair in "ATELIER_NUM_THREADS=$threads" "ROUNDS=$rounds" "REPETITIONS=$reps" "STEPS=$steps"; do
  [[ "${pair#*=}" =~ ^[1-9][0-9]*$ ]] || die "$pair: a whole number >= 1 expected"
done
[[ "$warmup_steps" =~ ^[1-9][0-9]*$ ]] || die "WARMUP_STEPS=$warmup_steps: a whole number >= 1 expected"
for pair in "MIN_TIME=$min_time" "WARMUP=$warmup"; do
  [[ "${pair#*=}" =~ ^[0-9]*\.?[0-9]+$ ]] || die "$pair: seconds (a number) expected"
done

# ---- malloc: the same settings for every process of both sides, through with_malloc.
case "$malloc" in
  raised) malloc_label="raised: GLIBC_TUNABLES=$tunables" ;;
  default) malloc_label="glibc's defaults (GLIBC_TUNABLES unset)" ;;
  inherit) malloc_label="inherited: GLIBC_TUNABLES=${GLIBC_TUNABLES:-(unset)}" ;;
  *) die "BENCH_MALLOC='$malloc': raised, default or inherit" ;;
esac
with_malloc() {
  case "$malloc" in
    raised) GLIBC_TUNABLES="$tunables" "$@" ;;
    default) env -u GLIBC_TUNABLES "$@" ;;
    inherit) "$@" ;;
  esac
}

# ---- the PyTorch reference: PyPI's PyTorch 2.x from scripts/torch-venv.sh's environment unless PYTHON says otherwise.
if [[ -n "${PYTHON:-}" ]]; then
  python="$PYTHON"
else
  venv="${ATELIER_TORCH_VENV:-$PWD/.venv-torch}"
  python="$venv/bin/python"
  [[ -x "$python" ]] || die "no PyTorch environment at $venv. Make it with scripts/torch-venv.sh (PyTorch from PyPI, \
a few GB), point ATELIER_TORCH_VENV at an existing one, or set PYTHON (PYTHON=/usr/bin/python3: Debian's 1.13)"
fi
command -v "$python" >/dev/null 2>&1 || die "no Python interpreter '$python' (set PYTHON)"
torch_info="$("$python" - 2>/dev/null <<'EOF'
import re
import torch
config = torch.__config__.show()
parts = ["torch " + torch.__version__]
onednn = re.search(r"MKL-DNN (v[0-9.]+)", config)
if onednn:
    parts.append("oneDNN " + onednn.group(1))
blas = re.search(r"BLAS_INFO=(\w+)", config)
if blas:
    parts.append("BLAS " + blas.group(1))
print(", ".join(parts))
EOF
)" || die "PyTorch is not importable by $python (scripts/torch-venv.sh makes an environment with it; or set PYTHON)"

# ---- atelier's side.
program=bench_ops
[[ "$mode" == began ]] && program=bench_train
[[ "$mode" == op_table ]] && program=bench_op_table
bench="$build/bin/$program"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    say "configuring $build (Release, CPU only)"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DATELIER_CUDA=OFF >/dev/null || die "cmake configure of $build failed"
  fi
  say "bringing $bench up to date"
  cmake --build "$build" -j"$(getconf _NPROCESSORS_ONLN)" --target "$program" >/dev/null || die "building $program in $build failed"
fi
[[ -x "$bench" ]] || die "$bench is missing (SKIP_BUILD=1 and no build there?)"

if [[ -n "${OUT_DIR:-}" ]]; then
  out="$OUT_DIR"
  mkdir -p "$out"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi

export ATELIER_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
load() { cut -d' ' -f1-3 /proc/loadavg; }

# Runs one side's command under the malloc settings, its console output into $out/LOG; on failure shows its end.
run_side() {
  local log="$1"
  shift
  if ! with_malloc "$@" >"$out/$log" 2>&1; then
    tail -n 20 "$out/$log" >&2
    die "failed: $* (log: $out/$log)"
  fi
}

header() {
  echo "bench-vs-torch: $1"
  echo "threads: $threads on both sides (ATELIER_NUM_THREADS, torch.set_num_threads); $(getconf _NPROCESSORS_ONLN) CPUs online"
  echo "malloc: $malloc_label; $(getconf GNU_LIBC_VERSION 2>/dev/null || echo glibc)"
  echo "PyTorch: $torch_info ($python)"
  echo "atelier: $bench at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + local changes')"
  echo "load average before: $load_before; after: $(load)"
}

load_before="$(load)"
if [[ "$mode" == ops || "$mode" == op_table ]]; then
  peer=bench/peers/ops_torch.py
  if [[ "$mode" == op_table ]]; then
    peer=bench/peers/op_table_torch.py
    if [[ -z "$filter" ]]; then
      rows="$("$python" "$peer" --list | paste -sd'|')" || die "$peer --list failed"
      filter="^op_table/($rows)/(forward|backward)"
    fi
  fi
  filter="${filter:-.}"
  say "ops '$filter': $rounds rounds, each $reps repetitions of >= ${min_time}s after ${warmup}s warm-up; load $load_before"
  for ((r = 1; r <= rounds; r++)); do
    say "round $r/$rounds: atelier (load $(load))"
    run_side "atelier.$r.log" "$bench" --benchmark_filter="$filter" --benchmark_repetitions="$reps" \
      --benchmark_min_time="$min_time" --benchmark_min_warmup_time="$warmup" --benchmark_report_aggregates_only=true \
      --benchmark_out="$out/atelier.$r.json" --benchmark_out_format=json
    say "round $r/$rounds: PyTorch (load $(load))"
    run_side "torch.$r.log" "$python" "$peer" --filter "$filter" --repetitions "$reps" \
      --min-time "$min_time" --warmup-time "$warmup" --threads "$threads" --out "$out/torch.$r.json"
  done
  header "$program '$filter', $rounds interleaved rounds of $reps repetitions (>= ${min_time}s each, ${warmup}s warm-up)"
  python3 bench/peers/bench_join.py "$mode" "$out"
  exit 0
fi

# ---- --began: one process per case, side, layout and round, so that each max RSS is that run's own.
filter="${filter:-^began_step/(32x32/C1/n32|64x64/C3/n64)$}"
mapfile -t cases < <("$bench" --benchmark_list_tests=true | sed 's|/real_time$||' | grep -E -- "$filter" || true)
[[ ${#cases[@]} -gt 0 ]] || die "no BEGAN step of $bench matches '$filter' ($bench --benchmark_list_tests=true lists them)"
say "BEGAN steps ${cases[*]}: $rounds rounds of $steps timed steps after $warmup_steps warm-up; load $load_before"
for ((r = 1; r <= rounds; r++)); do
  for name in "${cases[@]}"; do
    [[ "$name" =~ ^began_step/([0-9]+)x[0-9]+/C([0-9]+)/n([0-9]+)$ ]] || die "unexpected case name '$name'"
    size="${BASH_REMATCH[1]}" channels="${BASH_REMATCH[2]}" width="${BASH_REMATCH[3]}"
    tag="$(echo "$name" | tr '/' '_')"
    say "round $r/$rounds, $name: atelier (load $(load))"
    run_side "$tag.$r.atelier.log" "$bench" --benchmark_filter="^$name/" --steps "$steps" \
      --warmup-steps "$warmup_steps" --benchmark_out="$out/$tag.$r.atelier.json" --benchmark_out_format=json
    for layout in nchw channels_last; do
      say "round $r/$rounds, $name: PyTorch $layout (load $(load))"
      # h and batch as bench_train's cases (TrainCase's defaults).
      run_side "$tag.$r.$layout.log" "$python" bench/peers/began_step_torch.py --bench --layout "$layout" \
        --threads "$threads" --image-size "$size" --channels "$channels" --n "$width" --h 64 --batch 16 \
        --warmup "$warmup_steps" --reps "$steps" --out "$out/$tag.$r.$layout.json"
    done
  done
done
header "BEGAN step, $rounds interleaved rounds of $steps timed steps ($warmup_steps warm-up), h=64, batch 16"
python3 bench/peers/bench_join.py began "$out"

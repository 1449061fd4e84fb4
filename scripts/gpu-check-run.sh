#!/usr/bin/env bash
# .gpu/run.sh (scripts/gpu-check.sh --prepare copies this file there): the GPU check, run on the GPU machine from
# the repository root, offline, installing nothing. Three plans, one device run (timeout_s 300) each:
#
#   bash .gpu/run.sh            # the check plan: correctness first, then the n = 64 step beside PyTorch
#   bash .gpu/run.sh targets    # the targets plan: every speed and memory target of the CUDA speed issue
#   bash .gpu/run.sh sanitize   # our kernels under compute-sanitizer: memcheck, racecheck, synccheck, initcheck
#
# A GPU session runs the check plan first, the targets plan as its rerun, and the sanitize plan if time is left
# (docs/benchmarks.md, "GPU").
# It finds that machine's cuBLAS (its CUDA toolkit's lib64, else the lib folder of the nvidia-cublas Python
# package) and puts it, with .gpu/lib, on LD_LIBRARY_PATH for our programs alone; then runs, each part under its
# own time limit so the whole stays within 225 s (budget, below).
#
# The check plan (bash .gpu/run.sh, or bash .gpu/run.sh check):
#   1. the CUDA test program (parity of every primitive and op-table row, gradcheck on the GPU, training steps)
#   2. bin/gradcheck --device cuda (the op table's float64 gradient check on the GPU)
#   3. one BEGAN step at n = 64 (64x64x3, batch 16) on the GPU, a few more for the time per step, and one on the
#      CPU: their first-step losses side by side
#   4. the BEGAN step at n = 64 timed on the GPU by bench_train --device cuda (fp32, tf32 and bf16 eager, and tf32
#      captured once and replayed: --cuda-graph on) and by PyTorch (bench/peers/began_step_torch.py with this
#      machine's python3: fp32 NCHW and tf32 channels-last, each eager and as one replayed CUDA graph; bf16
#      autocast channels-last, eager), printed side by side
#   5. bench_ops --device cuda (the op benchmarks on the GPU), with the time left (at most 40 s)
# and prints one table, also when a part fails (its log's tail follows the table). With OUT set, the table goes to
# $OUT/gpu-check.txt and the parts' logs into $OUT/check-logs.tar.gz beside it.
#
# The targets plan (bash .gpu/run.sh targets) times, in the same run on the same GPU:
#   1. bench_train --device cuda, one process per precision and step mode (several cases each): tf32 captured
#      (--cuda-graph on) and eager at 32x32/C1/n32, 64x64/C3/n64 and 64x64/C3/n128; fp32 captured and eager,
#      bf16 captured, and fp32 captured with every convolution by im2col (ATELIER_CONV_ALGO=im2col: what Winograd
#      buys), at 64x64/C3/n64; 30 timed steps after 5
#   2. PyTorch, one process (began_step_torch.py --case ...): 64x64/C3/n64 fp32 NCHW, 64x64/C3/n64 and
#      64x64/C3/n128 tf32 channels-last, 32x32/C1/n32 tf32 NCHW and channels-last, each eager and as one CUDA
#      graph (10 rows)
#   3. one epoch of `began train`: 824 steps of batch 16 over 13,184 synthetic 64x64x3 images (painted on the
#      host by the data loader's prefetch thread), n = 128, tf32, --cuda-graph on, samples and checkpoint only at
#      the epoch's end, timed end to end by the wall clock; its steady steps/s from metrics.csv
# and prints the parts' table, then one row per side, case, precision, layout and step mode (median ms per step,
# peak device MiB; atelier rows with their target and whether it is met, and their time and peak against
# PyTorch's), then the epoch line (scripts/gpu-check-targets.py makes them). With OUT set, the table goes to
# $OUT/gpu-targets.txt, and each part's log, JSON and the epoch's metrics.csv into $OUT/targets-logs.tar.gz. Last, the per-op profile of
# the eager 64x64/C3/n64 tf32 step (bench_train --profile 5: each primitive's calls, kernels and device time) is
# printed under the table; after it, with what is left of the budget, the captured 64x64/C3/n64 tf32 step with
# every convolution by im2col and by F(4x4) (rows "NCHW conv=im2col", "NCHW conv=wino4": auto's F(2x2) against the
# others), the fp32 step's profile, and last, BEGAN's stride-1 conv layers and its decoders' thin last layers by
# im2col, F(2x2), F(4x4) and the direct kernels at fp32 and at tf32 (bench_ops' conv_algo/ rows, printed as they
# are), for the conv algorithm's auto rule on the GPU.
#
# The sanitize plan (bash .gpu/run.sh sanitize), for a third device run when the first two left time: our
# programs under compute-sanitizer (the machine's; docs/gpu.md, "compute-sanitizer"), each part exiting 3 on any
# finding: memcheck over every kernel family's CUDA tests (parity rows, reductions, chunked and Winograd
# convolutions), memcheck over five BEGAN steps at n = 64 with --cuda-graph on (two eager, the capture, replays),
# racecheck and synccheck over the block reductions, initcheck over three small BEGAN steps. It prints the parts'
# table with each tool's summary line, then the first lines of each finding's report. With OUT set: $OUT/gpu-sanitize.txt and
# sanitize-logs.tar.gz.
#
# Each plan exits 0 when every part passed, 1 otherwise (2 for an unknown plan).
#
# Environment:
#   GPU_CHECK_PYTHON=PATH   the interpreter for began_step_torch.py (default python3; it needs torch)
#   GPU_CHECK_DRY_RUN=1     the plumbing without a GPU: every program runs with --device cpu, on the smallest
#                           cases (32x32/C1/n16 for bench_train, 32x32/C1/n8 for began and PyTorch, fp32 and
#                           eager for PyTorch, whose tf32 and CUDA graphs need CUDA), with 2 timed steps; the
#                           tables print as on the GPU, their figures mean nothing. Point .gpu/bin at a CPU build
#                           to try it (tests/tools/check_gpu_check.sh does; atelier_cuda_tests is then missing
#                           and that part fails, as a GPU part that cannot start would).
set -u

plan="${1:-check}"
if [[ $# -gt 1 || ("$plan" != check && "$plan" != targets && "$plan" != sanitize) ]]; then
  echo "usage: bash .gpu/run.sh [check|targets|sanitize]   (default check; see this file's header)" >&2
  exit 2
fi
dry=0
[[ "${GPU_CHECK_DRY_RUN:-0}" == 1 ]] && dry=1
device=cuda
((dry)) && device=cpu
torch_python="${GPU_CHECK_PYTHON:-python3}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root" || exit 1
logs="$(mktemp -d)"
started=$(date +%s)

# ---- cuBLAS: the soname our programs need, looked for in the toolkit's lib64, then in Python packages ----
soname="$(cat "$here/cublas-soname" 2>/dev/null || echo libcublas.so.13)"
cublas_dir=""
for d in ${CUDA_HOME:-} ${CUDA_PATH:-} /usr/local/cuda /usr/local/cuda-* /opt/cuda /usr/lib/x86_64-linux-gnu; do
  for lib in "$d/lib64" "$d/targets/x86_64-linux/lib" "$d"; do
    if [[ -z "$cublas_dir" && -e "$lib/$soname" ]]; then cublas_dir="$lib"; fi
  done
done
if [[ -z "$cublas_dir" ]] && command -v python3 >/dev/null; then
  # The nvidia-cublas wheel (PyTorch's dependency): its files sit somewhere under the `nvidia` package.
  cublas_dir="$(timeout 15 python3 - "$soname" 2>/dev/null <<'EOF'
import importlib.util, os, sys
name = sys.argv[1]
for module in ("nvidia.cublas", "nvidia", "torch"):
    try:
        spec = importlib.util.find_spec(module)
    except Exception:
        continue
    for root in (spec.submodule_search_locations or []) if spec else []:
        for folder, _, files in os.walk(root):
            if name in files:
                print(folder)
                sys.exit(0)
EOF
)"
fi
library_path="$here/lib"
if [[ -n "$cublas_dir" ]]; then
  library_path="$cublas_dir:$library_path"
  # Our programs open cuBLAS at their first GEMM (backends/cuda/cublas_api.h): this one file, the one the tables'
  # headers name, and an error naming it if it does not load.
  export ATELIER_CUBLAS_LIBRARY="$cublas_dir/$soname"
fi

# ---- the parts ----
names=()
results=()
seconds=()
details=()

# part NAME LIMIT_SECONDS COMMAND...: runs COMMAND with our library path in front of the machine's own (which may
# be how the driver's libcuda is found), its output in $logs/NAME.log, for at most LIMIT_SECONDS and never past
# the whole check's budget (a part with no time left is not started). PyTorch's parts (torch_*) keep the machine's
# environment as it is: our libstdc++ and the toolkit's cuBLAS are not the ones its wheels were built against; so
# does a part called with keep_env=1 (compute-sanitizer's: the tool is the machine's, and our programs find cuBLAS
# through ATELIER_CUBLAS_LIBRARY and carry their C++ runtime).
# 225 s: the device tool's run gets timeout_s 300 and must end within 4 minutes with its table printed, after
# the machine's own start-up.
budget=225
# not_run NAME WHY MESSAGE: a part's row that says it did not run (result "NOT RUN(WHY)"), MESSAGE in its log.
not_run() {
  names+=("$1") seconds+=(0) results+=("NOT RUN($2)") details+=("")
  echo "$3" >"$logs/$1.log"
}
part() {
  local name="$1" limit="$2" rc t0 left
  shift 2
  t0=$(date +%s)
  left=$((budget - (t0 - started)))
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    not_run "$name" time "not run: the check's ${budget} s were spent"
    return 1
  fi
  if [[ "$name" == torch_* || -n "${keep_env:-}" ]]; then
    timeout --kill-after=2 "$limit" "$@" >"$logs/$name.log" 2>&1
  else
    LD_LIBRARY_PATH="$library_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" timeout --kill-after=2 "$limit" "$@" \
      >"$logs/$name.log" 2>&1
  fi
  rc=$?
  names+=("$name")
  seconds+=($(($(date +%s) - t0)))
  if [[ $rc -eq 0 ]]; then
    results+=("PASS")
  elif [[ $rc -eq 77 ]]; then
    results+=("SKIP(no GPU)")
  elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
    results+=("TIMEOUT(${limit}s)")
  else
    results+=("FAIL(rc=$rc)")
  fi
  details+=("")
  return $rc
}
set_detail() { details[${#details[@]} - 1]="$*"; }

gpu="$(timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
  head -1)"
[[ -n "$gpu" ]] || gpu="(nvidia-smi gave nothing)"

# The header lines of both plans' tables.
table_header() {
  echo "atelier GPU $1, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n)"
  ((dry)) && echo "DRY RUN (GPU_CHECK_DRY_RUN=1): --device cpu, the smallest cases, 2 timed steps; figures mean nothing"
  echo "GPU: $gpu"
  echo "cuBLAS: ${cublas_dir:-NOT FOUND} ($soname); glibc here $(ldd --version 2>/dev/null | head -1 |
    grep -o '[0-9.]*$'), needed $(cat "$here/glibc-needed" 2>/dev/null)"
  # The driver's library, which the static CUDA runtime opens at start: where the loader finds it.
  local libcuda
  libcuda="$(ldconfig -p 2>/dev/null | grep -m1 'libcuda\.so\.1 ' | sed 's/.*=> //')"
  echo "libcuda.so.1: ${libcuda:-not in the ldconfig cache}${LD_LIBRARY_PATH:+; LD_LIBRARY_PATH=$LD_LIBRARY_PATH}"
}
# The parts' rows, then the tails of the logs of the parts that did not pass.
parts_rows() {
  local width="$1"
  printf "%-${width}s %-14s %5s  %s\n" part result s detail
  for i in "${!names[@]}"; do
    printf "%-${width}s %-14s %5s  %s\n" "${names[$i]}" "${results[$i]}" "${seconds[$i]}" "${details[$i]}"
  done
}
failed_logs() {
  for i in "${!names[@]}"; do
    if [[ "${results[$i]}" != PASS ]]; then
      echo
      echo "---- ${names[$i]}: ${results[$i]}, last lines of its log ----"
      tail -40 "$logs/${names[$i]}.log"
    fi
  done
}

# bench_op_table's rows in one line: how many, and the min / median / max microseconds of the forward rows and of
# the forward + backward rows (each row's time per iteration, its unit converted).
op_table_summary() {
  awk '/^op_table\/.*\/real_time/ {
      t = $2; if ($3 == "ns") t /= 1000; else if ($3 == "ms") t *= 1000; else if ($3 == "s") t *= 1e6
      if ($1 ~ /\/forward\//) f[nf++] = t; else b[nb++] = t }
    function stats(a, n,   i, j, x) {
      for (i = 1; i < n; ++i) { x = a[i]; for (j = i - 1; j >= 0 && a[j] > x; --j) a[j + 1] = a[j]; a[j + 1] = x }
      return n ? sprintf("%.1f / %.1f / %.1f us", a[0], a[int((n - 1) / 2)], a[n - 1]) : "-" }
    END { printf "%d rows; forward min / median / max %s, forward + backward %s", nf + nb, stats(f, nf), stats(b, nb) }' \
    "$1" 2>/dev/null
}

# metrics.csv: epoch,step,loss_real,loss_fake_d,loss_fake_g,loss_d,loss_g,k_t,m_global,lr,time_s (time since start)
first_losses() { sed -n 2p "$1/metrics.csv" 2>/dev/null | cut -d, -f3-9; }
step_time() { awk -F, 'NR == 3 {t0 = $11} END {if (NR > 3) printf "%.3f s/step over steps 3-%d", ($11 - t0) / (NR - 3), NR - 1}' \
  "$1/metrics.csv" 2>/dev/null; }

# ================================================================ the check plan
check_plan() {
  # The sizes and step counts below, or (GPU_CHECK_DRY_RUN=1) the smallest ones on the CPU.
  local image=(--image-size 64 --channels 3 --n 64) synthetic=256 step_case='^began_step/64x64/C3/n64/'
  local steps=(--steps 20 --warmup-steps 3) torch_sizes=(--image-size 64 --channels 3 --n 64 --step-mode both)
  local torch_reps=(--warmup 5 --reps 30) tf32=tf32 ops_filter=(--benchmark_filter='-^conv_algo/')
  local op_table_filter=(--benchmark_filter=.)
  if ((dry)); then
    image=(--image-size 32 --channels 1 --n 8) synthetic=64 step_case='^began_step/32x32/C1/n16/'
    steps=(--steps 2 --warmup-steps 1) torch_sizes=(--image-size 32 --channels 1 --n 8 --step-mode eager)
    torch_reps=(--warmup 1 --reps 2) tf32=fp32 ops_filter=(--benchmark_filter='^gemm/1024x1024x1024/')
    op_table_filter=(--benchmark_filter='^op_table/(add|matmul)/')
  fi

  part cuda_tests 95 "$here/bin/atelier_cuda_tests"
  set_detail "$(grep -E '^\[doctest\] (test cases|assertions)' "$logs/cuda_tests.log" | tr -s ' ' | paste -sd ';' -)"

  part gradcheck 20 "$here/bin/gradcheck" --device "$device"
  set_detail "$(tail -1 "$logs/gradcheck.log")"

  # BEGAN at n = 64: synthetic 64x64x3 images, batch 16. Samples and checkpoints only at the run's end.
  local began_args=(train --data synthetic --synthetic-size "$synthetic" "${image[@]}" --batch 16
    --checkpoint-every 100000 --sample-every 100000 --sample-count 16 --progress-seconds 1000 --seed 7)
  part began_cuda 30 "$here/bin/began" "${began_args[@]}" --device "$device" --steps 6 --out "$logs/began-cuda"
  set_detail "step 1: $(first_losses "$logs/began-cuda"); $(step_time "$logs/began-cuda")"
  part began_cpu 25 "$here/bin/began" "${began_args[@]}" --device cpu --steps 1 --out "$logs/began-cpu"
  # The largest relative difference between the two first steps' numbers (k_t is 0 after one step on both).
  max_rel() {
    paste -d, <(first_losses "$1" | tr , '\n') <(first_losses "$2" | tr , '\n') |
      awk -F, '$1 != "" && $2 != "" {d = $1 - $2; d = d < 0 ? -d : d; m = ($2 < 0 ? -$2 : $2);
        r = m > 0 ? d / m : d; if (r > worst) worst = r; n++} END {if (n) printf "%.2g", worst; else printf "-"}'
  }
  set_detail "step 1: $(first_losses "$logs/began-cpu"); max relative difference to cuda $(max_rel "$logs/began-cuda" \
    "$logs/began-cpu")"

  # atelier against PyTorch on this GPU: the BEGAN step at n = 64, median of the timed steps, each side warmed up.
  for precision in fp32 tf32 bf16; do
    part "atelier_$precision" 22 "$here/bin/bench_train" --device "$device" --precision "$precision" \
      --benchmark_filter="$step_case" "${steps[@]}" \
      --benchmark_out="$logs/atelier_$precision.json" --benchmark_out_format=json
    set_detail "bench_train --device cuda --precision $precision, 20 steps"
  done
  # The same step captured once and replayed (began train's --cuda-graph), at tf32, where launches matter most.
  part atelier_cuda_graph 22 "$here/bin/bench_train" --device "$device" --precision tf32 --cuda-graph on \
    --benchmark_filter="$step_case" "${steps[@]}" \
    --benchmark_out="$logs/atelier_cuda_graph.json" --benchmark_out_format=json
  set_detail "bench_train --device cuda --precision tf32 --cuda-graph on, 20 replayed steps"
  local torch_args=(--bench --device "$device" "${torch_sizes[@]}" "${torch_reps[@]}" --out "$logs/torch_step.jsonl")
  # shellcheck disable=SC2016 # $@ is the inner shell's
  part torch_step 80 bash -c '"$0" bench/peers/began_step_torch.py "$@" --precision fp32 --layout nchw &&
    "$0" bench/peers/began_step_torch.py "$@" --precision '"$tf32"' --layout channels_last &&
    "$0" bench/peers/began_step_torch.py "$@" --precision bf16 --layout channels_last --step-mode eager' \
    "$torch_python" "${torch_args[@]}"
  set_detail "$(wc -l 2>/dev/null <"$logs/torch_step.jsonl" || echo 0) rows (fp32 NCHW, tf32 channels-last: eager, cuda_graph; bf16 channels-last: eager)"

  # The op rows last: they take what is left of the budget (the BEGAN step comparison above matters more; its
  # cuda_graph row took 22 s of this part's 40).
  part bench_ops 40 "$here/bin/bench_ops" --device "$device" --benchmark_min_time=0.05 "${ops_filter[@]}"
  set_detail "$(grep -c '/real_time' "$logs/bench_ops.log") rows"
  # What a recorded op costs on this GPU, eagerly (bench/bench_op_table.cpp: every op-table row at its own tiny
  # shapes, forward and forward + backward, each iteration ending with a synchronize): the launches and the
  # framework around them, which a captured step replays without.
  part op_table 15 "$here/bin/bench_op_table" --device "$device" --benchmark_min_time=0.02 "${op_table_filter[@]}"
  set_detail "$(op_table_summary "$logs/op_table.log")"

  # ---- the table ----
  {
    table_header check
    echo "BEGAN losses below: loss_real,loss_fake_d,loss_fake_g,loss_d,loss_g,k_t,m_global"
    echo
    parts_rows 12
    echo
    echo "bench_ops on the GPU (time per iteration, rate):"
    grep '/real_time' "$logs/bench_ops.log" | awk '{rate = ""; for (i = 6; i <= NF; ++i) rate = rate " " $i;
      printf "  %-44s %9s %s %s\n", $1, $2, $3, rate}'
    echo
    echo "BEGAN step 64x64x3, n = 64, batch 16 on this GPU (median of the timed steps; peak: the device allocator's):"
    check_step_table
    failed_logs
    echo
    echo "total $(($(date +%s) - started)) s"
  } >"$table" 2>&1
}

# The check plan's side-by-side rows (Python's standard library; "-" where a part gave no figure).
check_step_table() {
  python3 - "$logs" <<'EOF' 2>&1 || echo "  (no table: python3 failed)"
import json, os, sys
logs = sys.argv[1]
rows = []
for part, precision, mode in (("atelier_fp32", "fp32", "eager"), ("atelier_tf32", "tf32", "eager"),
                              ("atelier_bf16", "bf16", "eager"), ("atelier_cuda_graph", "tf32", "cuda_graph")):
    ms = peak = "-"
    try:
        with open(os.path.join(logs, "%s.json" % part)) as f:
            b = [r for r in json.load(f)["benchmarks"] if r.get("run_type", "iteration") == "iteration"][0]
        ms, peak = "%.2f" % (b["step_s_median"] * 1e3), "%.0f" % b["peak_MiB"]
    except (OSError, ValueError, KeyError, IndexError):
        pass
    rows.append(("atelier", precision, "NCHW", mode, ms, peak))
try:
    with open(os.path.join(logs, "torch_step.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            rows.append(("PyTorch " + r["torch"], r["precision"], r["layout"], r["mode"],
                         "%.2f" % (r["seconds_per_step"] * 1e3), "%.0f" % r["gpu_peak_mib"] if "gpu_peak_mib" in r else "-"))
except (OSError, ValueError, KeyError):
    pass
print("  %-22s %-9s %-13s %-10s %9s %9s" % ("side", "precision", "layout", "step", "median ms", "peak MiB"))
for r in rows:
    print("  %-22s %-9s %-13s %-10s %9s %9s" % r)
EOF
}

# ================================================================ the targets plan
# Each part's caps add up to the 225 s budget; the parts run most important first, so that a slow part
# leaves the later ones less time (NOT RUN(time) when under 5 s are left), never the table.
targets_plan() {
  # The cases and step counts below, or (GPU_CHECK_DRY_RUN=1) the smallest ones on the CPU.
  local n32='32x32/C1/n32' n64='64x64/C3/n64' n128='64x64/C3/n128' steps=(--steps 30 --warmup-steps 5)
  # PyTorch's layouts: the issue's (fp32 NCHW, tf32 channels-last); at 32x32/C1/n32, where it names none, both.
  local torch_cases=(--case "64,3,64,fp32,nchw" --case "64,3,64,tf32,channels_last" --case "64,3,128,tf32,channels_last"
    --case "32,1,32,tf32,both")
  local torch_more=(--device cuda --step-mode both --warmup 5 --reps 30)
  local epoch_images=13184 epoch_model=(--image-size 64 --channels 3 --n 128)
  local algo_filter='^conv_algo/16x(64x64x64->64|128x32x32->128|192x16x16->192|64x64x64->3|32x32x32->1)/'
  if ((dry)); then
    n32='32x32/C1/n16' n64='32x32/C1/n16' n128='32x32/C1/n16' steps=(--steps 2 --warmup-steps 1)
    torch_cases=(--case "32,1,8,fp32,nchw" --case "32,1,8,fp32,both")
    torch_more=(--device cpu --step-mode eager --warmup 1 --reps 2)
    epoch_images=64 epoch_model=(--image-size 32 --channels 1 --n 8)
    algo_filter='^conv_algo/16x16x32x32->1/'
  fi
  # PyTorch's rows: one per case, layout (two for "both") and step mode (two for "both").
  local epoch_steps=$((epoch_images / 16)) torch_rows=0 modes=2 spec
  ((dry)) && modes=1
  for spec in "${torch_cases[@]}"; do
    case "$spec" in
      --case) ;;
      *,both) torch_rows=$((torch_rows + 2 * modes)) ;;
      *) torch_rows=$((torch_rows + modes)) ;;
    esac
  done

  # bench_train PART LIMIT PRECISION GRAPH CASE...: one process, the cases in one --benchmark_filter (each row's
  # peak_MiB is its own: bench_train resets the peak before each case; its header).
  atelier_rows() {
    local name="$1" limit="$2" precision="$3" graph="$4" cases filter
    shift 4
    # The cases without repeats (a dry run makes them all 32x32/C1/n16), as one regular expression.
    mapfile -t cases < <(printf '%s\n' "$@" | sort -u)
    filter="^began_step/($(
      IFS='|'
      echo "${cases[*]}"
    ))/"
    part "$name" "$limit" "$here/bin/bench_train" --device "$device" --precision "$precision" --cuda-graph "$graph" \
      --benchmark_filter="$filter" "${steps[@]}" --benchmark_out="$logs/$name.json" --benchmark_out_format=json
    set_detail "bench_train --precision $precision --cuda-graph $graph:" \
      "$(grep -c '/real_time' "$logs/$name.log") of ${#cases[@]} rows"
  }

  atelier_rows atelier_tf32_graph 40 tf32 on "$n32" "$n64" "$n128"
  atelier_rows atelier_fp32_graph 20 fp32 on "$n64" "$n128"

  # PyTorch: every case in one process (one import of torch, one CUDA start).
  part torch_targets 75 "$torch_python" bench/peers/began_step_torch.py --bench "${torch_more[@]}" \
    "${torch_cases[@]}" --out "$logs/torch_targets.jsonl"
  set_detail "began_step_torch.py: $(wc -l 2>/dev/null <"$logs/torch_targets.jsonl" || echo 0) of $torch_rows rows"

  # One epoch of began train, timed end to end: the wall clock around the whole process goes to epoch.wall_s
  # (written only when the process ends by itself).
  # shellcheck disable=SC2016 # $@ is the inner shell's
  part epoch 40 bash -c 't0=$(date +%s.%N); "$@"; rc=$?
    awk -v a="$t0" -v b="$(date +%s.%N)" '\''BEGIN {printf "%.3f\n", b - a}'\'' >"$0"; exit $rc' \
    "$logs/epoch.wall_s" "$here/bin/began" train --data synthetic --synthetic-size "$epoch_images" \
    "${epoch_model[@]}" --batch 16 --epochs 1 --precision tf32 --cuda-graph on --device "$device" \
    --checkpoint-every 100000 --sample-every 100000 --sample-count 16 --progress-seconds 1000 --seed 7 \
    --out "$logs/epoch"
  local done_steps=$(($(wc -l 2>/dev/null <"$logs/epoch/metrics.csv" || echo 1) - 1))
  set_detail "began train, 1 epoch: $done_steps of $epoch_steps steps"
  local epoch_result="${results[${#results[@]} - 1]}"

  atelier_rows atelier_tf32_eager 25 tf32 off "$n32" "$n64" "$n128"
  atelier_rows atelier_fp32_eager 12 fp32 off "$n64"
  atelier_rows atelier_bf16_graph 12 bf16 on "$n64"
  # What Winograd buys at fp32 (backends/cuda/winograd.cu; the default, auto, takes it for the 3x3 stride-1 layers
  # of at least 16 channels): the captured fp32 step again with every convolution by im2col. Rows "NCHW
  # conv=im2col".
  ATELIER_CONV_ALGO=im2col atelier_rows atelier_fp32_graph_im2col 12 fp32 on "$n64"

  # Where the eager n = 64 tf32 step's time goes: 5 steps under bench_train's profiler (each primitive's calls,
  # kernels and device time from events on the stream; backends/profiler.h), with what is left of the budget (the
  # caps above add up to 231 s of 225, but they are caps: a healthy run leaves well over a minute; the parts after it
  # add 28 s more).
  part profile_n64 20 "$here/bin/bench_train" --device "$device" --precision tf32 --cuda-graph off \
    --benchmark_filter="^began_step/($n64)/" --steps 3 --warmup-steps 2 --profile 5 \
    --benchmark_out="$logs/profile_n64.json" --benchmark_out_format=json
  set_detail "bench_train --precision tf32 --profile 5, eager"

  # The conv algorithm under tf32 (backends/cuda/conv.cu, conv_choice: auto takes F(2x2) where FP32 takes F(4x4)),
  # against the rule it replaced (every layer by im2col; rows "NCHW conv=im2col") and F(4x4) forced (rows "NCHW
  # conv=wino4", 8x the gradients' error): the captured n = 64 step. (The im2col workspace at 24 and 48 MiB
  # instead of 256, tried here on 2026-12-04, cost 1.0-1.4 ms: docs/benchmarks.md.)
  local algo
  for algo in im2col wino4; do
    ATELIER_CONV_ALGO=$algo atelier_rows "atelier_tf32_graph_$algo" 8 tf32 on "$n64"
  done
  # Where the eager fp32 step's time goes, as for tf32 above.
  part profile_n64_fp32 12 "$here/bin/bench_train" --device "$device" --precision fp32 --cuda-graph off \
    --benchmark_filter="^began_step/($n64)/" --steps 3 --warmup-steps 2 --profile 5 \
    --benchmark_out="$logs/profile_n64_fp32.json" --benchmark_out_format=json
  set_detail "bench_train --precision fp32 --profile 5, eager"

  # The conv algorithms layer by layer, for the auto rule on the GPU (measured on the CPU so far;
  # backends/conv_algo.h): BEGAN's three stride-1 layer shapes at n = 64 and the decoders' last layers (64 -> 3 at
  # 64x64, 32 -> 1 at 32x32), forward and both gradients, by im2col, F(2x2), F(4x4) and direct, at fp32. Printed
  # under the table.
  part conv_algo 18 "$here/bin/bench_ops" --device "$device" --benchmark_min_time=0.05 --benchmark_filter="$algo_filter"
  set_detail "bench_ops conv_algo/: $(grep -c '/real_time' "$logs/conv_algo.log") rows"
  # The same at tf32, where the products run on the tensor cores.
  part conv_algo_tf32 18 "$here/bin/bench_ops" --device "$device" --precision tf32 --benchmark_min_time=0.05 \
    --benchmark_filter="$algo_filter"
  set_detail "bench_ops --precision tf32 conv_algo/: $(grep -c '/real_time' "$logs/conv_algo_tf32.log") rows"

  # ---- the table ----
  {
    table_header targets
    echo
    parts_rows 25
    echo
    python3 scripts/gpu-check-targets.py "$logs" --epoch-steps "$epoch_steps" --epoch-images "$epoch_images" \
      --epoch-result "$epoch_result" 2>&1 || echo "  (no table: python3 failed)"
    # The profile's table as bench_train printed it (its JSON goes to $OUT with the others; gpu-check-targets.py
    # reads only atelier_*.json, so it adds no step row).
    echo
    sed -n '/^profile: /,/^  span /p' "$logs/profile_n64.log" 2>/dev/null || true
    echo
    sed -n '/^profile: /,/^  span /p' "$logs/profile_n64_fp32.log" 2>/dev/null || true
    echo
    echo "conv_algo at fp32, then at tf32:"
    grep '^conv_algo/' "$logs/conv_algo.log" 2>/dev/null || true
    grep '^conv_algo/' "$logs/conv_algo_tf32.log" 2>/dev/null || true
    failed_logs
    echo
    echo "total $(($(date +%s) - started)) s"
  } >"$table" 2>&1
}

# ================================================================ the sanitize plan
# compute-sanitizer, the CUDA toolkit's checker: $GPU_CHECK_SANITIZER, else on PATH, else in the toolkit's folders.
find_sanitizer() {
  local c
  for c in ${GPU_CHECK_SANITIZER:-} "$(command -v compute-sanitizer 2>/dev/null)" ${CUDA_HOME:+"$CUDA_HOME/bin/compute-sanitizer"} \
    /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer \
    /usr/local/cuda/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer; do
    if [[ -n "$c" && -x "$c" ]]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

sanitize_plan() {
  local sanitizer="" tests="$here/bin/atelier_cuda_tests"
  ((dry)) || sanitizer="$(find_sanitizer)"
  local began64=(train --data synthetic --synthetic-size 128 --image-size 64 --channels 3 --n 64 --batch 16)
  local began32=(train --data synthetic --synthetic-size 64 --image-size 32 --channels 1 --n 16 --batch 16)
  if ((dry)); then
    began64=(train --data synthetic --synthetic-size 64 --image-size 32 --channels 1 --n 8 --batch 16)
    began32=("${began64[@]}")
  fi
  local quiet=(--checkpoint-every 100000 --sample-every 100000 --sample-count 16 --progress-seconds 1000 --seed 7)
  # checked NAME LIMIT TOOL COMMAND...: COMMAND under compute-sanitizer's TOOL, which makes it exit 3 on any finding
  # (each printed, at most 25); dry, the command alone. Its detail is the tool's summary line.
  checked() {
    local name="$1" limit="$2" tool="$3"
    shift 3
    if [[ -n "$sanitizer" ]]; then
      keep_env=1 part "$name" "$limit" "$sanitizer" --tool "$tool" --error-exitcode 3 --print-limit 25 "$@"
    elif ((dry)); then
      part "$name" "$limit" "$@"
    else
      not_run "$name" "no compute-sanitizer" "compute-sanitizer not found (GPU_CHECK_SANITIZER, PATH, /usr/local/cuda*)"
      return 1
    fi
    local summary
    summary="$(grep -E '(ERROR|RACECHECK) SUMMARY' "$logs/$name.log" | tail -1 | sed 's/^=* *//')"
    ((dry)) && summary="dry run, no tool"
    set_detail "$tool: ${summary:-no summary line (the tool did not finish)}"
  }

  # Out-of-bounds and misaligned accesses in every kernel family, on the parity rows' shapes (odd sizes, strides,
  # broadcasts) and the chunked convolutions.
  checked memcheck_kernels 80 memcheck "$tests" -tc='cuda copy*,cuda cast*,cuda fill*,cuda random*,cuda unary*,cuda binary*,cuda where*,cuda reduce*,parity: every primitive row*,upsample_conv2d_elu*,cuda conv*,cuda winograd*,cuda direct*'
  # The whole BEGAN step at the check plan's size: two eager steps, the capture, replays (--cuda-graph on).
  checked memcheck_began 45 memcheck "$here/bin/began" "${began64[@]}" "${quiet[@]}" --device "$device" \
    --cuda-graph on --steps 5 --out "$logs/memcheck-began"
  # Shared-memory races and barrier misuse in the block reductions (docs/gpu.md, "What the first GPU run must
  # watch", items 4, 8 and 12), the only kernels that share memory between threads (the direct weight gradient's
  # and the normalisations' block sums are reduce.cu's fold).
  checked racecheck_reduce 35 racecheck "$tests" -tc='cuda reduce*,cuda direct*,cuda norm*'
  checked synccheck_reduce 20 synccheck "$tests" -tc='cuda reduce*,cuda direct*,cuda norm*'
  # Reads of device memory never written, over a small BEGAN run (a finding inside cuBLAS is cuBLAS's own: its
  # lines name the kernel).
  checked initcheck_began 40 initcheck "$here/bin/began" "${began32[@]}" "${quiet[@]}" --device "$device" \
    --steps 3 --out "$logs/initcheck-began"

  {
    table_header sanitize
    local found="${sanitizer:-NOT FOUND}"
    ((dry)) && found="none (dry run: the commands alone)"
    echo "compute-sanitizer: $found"
    echo
    parts_rows 18
    # Each part's findings as the tool printed them (its first 40 lines of report), then the failed logs' tails.
    for i in "${!names[@]}"; do
      if grep -q '^========= ' "$logs/${names[$i]}.log" 2>/dev/null && [[ "${results[$i]}" != PASS ]]; then
        echo
        echo "---- ${names[$i]}: the first lines of its report ----"
        grep -m 40 '^========= ' "$logs/${names[$i]}.log"
      fi
    done
    failed_logs
    echo
    echo "total $(($(date +%s) - started)) s"
  } >"$table" 2>&1
}

case "$plan" in
  check)
    table="$logs/gpu-check.txt"
    check_plan
    ;;
  targets)
    table="$logs/gpu-targets.txt"
    targets_plan
    ;;
  sanitize)
    table="$logs/gpu-sanitize.txt"
    sanitize_plan
    ;;
esac
cat "$table"

# $OUT: the table, and every log, JSON, metrics.csv and small file beside it in one archive ($plan-logs.tar.gz),
# since the device tool brings back at most 8 files (the runs' checkpoints and anything over 2 MB stay out).
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT" && cp "$table" "$OUT/$(basename "$table")"
  (cd "$logs" && find . -type f -size -2M ! -path '*/checkpoints/*' ! -name "$(basename "$table")" |
    LC_ALL=C sort | tar -czf "$OUT/$plan-logs.tar.gz" -T -) ||
    echo "run.sh: could not archive the logs into $OUT" >&2
fi
for r in "${results[@]}"; do [[ "$r" == PASS ]] || exit 1; done
exit 0

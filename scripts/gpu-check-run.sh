#!/usr/bin/env bash
# .gpu/run.sh (scripts/gpu-check.sh --prepare copies this file there): the GPU check, run on the GPU machine from
# the repository root, offline, installing nothing:
#
#   bash .gpu/run.sh
#
# It finds that machine's cuBLAS (its CUDA toolkit's lib64, else the lib folder of the nvidia-cublas Python
# package) and puts it, with .gpu/lib, on LD_LIBRARY_PATH for our programs alone; then runs, each part under its
# own time limit so the whole stays within 225 s (budget, below):
#   1. the CUDA test program (parity of every primitive and op-table row, gradcheck on the GPU, training steps)
#   2. bin/gradcheck --device cuda (the op table's float64 gradient check on the GPU)
#   3. one BEGAN step at n = 64 (64x64x3, batch 16) on the GPU, a few more for the time per step, and one on the
#      CPU: their first-step losses side by side
#   4. the BEGAN step at n = 64 timed on the GPU by bench_train --device cuda (fp32, tf32 and bf16 eager, and tf32
#      captured once and replayed: --cuda-graph on) and by PyTorch (bench/peers/began_step_torch.py with this
#      machine's python3: fp32 NCHW and tf32 channels-last, each eager and as one replayed CUDA graph; bf16
#      autocast channels-last, eager), printed side by side
#   5. bench_ops --device cuda (the op benchmarks on the GPU), with the time left (at most 18 s)
# and prints one table, also when a part fails (its log's tail follows the table). With OUT set, the table goes to
# $OUT/gpu-check.txt and each part's log beside it. Exits 0 when every part passed, 1 otherwise.
set -u

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
[[ -n "$cublas_dir" ]] && library_path="$cublas_dir:$library_path"

# ---- the parts ----
names=()
results=()
seconds=()
details=()

# part NAME LIMIT_SECONDS COMMAND...: runs COMMAND with our library path, its output in $logs/NAME.log, for at
# most LIMIT_SECONDS and never past the whole check's budget (a part with no time left is not started).
# 225 s: the device tool's run gets timeout_s 300 and must end within 4 minutes with its table printed, after
# the machine's own start-up.
budget=225
part() {
  local name="$1" limit="$2" rc t0 left
  shift 2
  t0=$(date +%s)
  left=$((budget - (t0 - started)))
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    names+=("$name") seconds+=(0) results+=("NOT RUN(time)") details+=("")
    echo "not run: the check's ${budget} s were spent" >"$logs/$name.log"
    return 1
  fi
  LD_LIBRARY_PATH="$library_path" timeout --kill-after=2 "$limit" "$@" >"$logs/$name.log" 2>&1
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
set_detail() { details[${#details[@]} - 1]="$1"; }

gpu="$(timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
  head -1)"
[[ -n "$gpu" ]] || gpu="(nvidia-smi gave nothing)"

part cuda_tests 95 "$here/bin/atelier_cuda_tests"
set_detail "$(grep -E '^\[doctest\] (test cases|assertions)' "$logs/cuda_tests.log" | tr -s ' ' | paste -sd ';' -)"

part gradcheck 20 "$here/bin/gradcheck" --device cuda
set_detail "$(tail -1 "$logs/gradcheck.log")"

# BEGAN at n = 64: synthetic 64x64x3 images, batch 16. Samples and checkpoints only at the run's end.
began_args=(train --data synthetic --synthetic-size 256 --image-size 64 --channels 3 --n 64 --batch 16
  --checkpoint-every 100000 --sample-every 100000 --sample-count 16 --progress-seconds 1000 --seed 7)
# metrics.csv: epoch,step,loss_real,loss_fake_d,loss_fake_g,loss_d,loss_g,k_t,m_global,lr,time_s (time since start)
first_losses() { sed -n 2p "$1/metrics.csv" 2>/dev/null | cut -d, -f3-9; }
step_time() { awk -F, 'NR == 3 {t0 = $11} END {if (NR > 3) printf "%.3f s/step over steps 3-%d", ($11 - t0) / (NR - 3), NR - 1}' \
  "$1/metrics.csv" 2>/dev/null; }
part began_cuda 30 "$here/bin/began" "${began_args[@]}" --device cuda --steps 6 --out "$logs/began-cuda"
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
step_case='^began_step/64x64/C3/n64/'
for precision in fp32 tf32 bf16; do
  part "atelier_$precision" 22 "$here/bin/bench_train" --device cuda --precision "$precision" \
    --benchmark_filter="$step_case" --steps 20 --warmup-steps 3 \
    --benchmark_out="$logs/atelier_$precision.json" --benchmark_out_format=json
  set_detail "bench_train --device cuda --precision $precision, 20 steps"
done
# The same step captured once and replayed (began train's --cuda-graph), at tf32, where launches matter most.
part atelier_cuda_graph 22 "$here/bin/bench_train" --device cuda --precision tf32 --cuda-graph on \
  --benchmark_filter="$step_case" --steps 20 --warmup-steps 3 \
  --benchmark_out="$logs/atelier_cuda_graph.json" --benchmark_out_format=json
set_detail "bench_train --device cuda --precision tf32 --cuda-graph on, 20 replayed steps"
torch_args=(--bench --device cuda --image-size 64 --channels 3 --n 64 --step-mode both --warmup 5 --reps 30
  --out "$logs/torch_step.jsonl")
# shellcheck disable=SC2016 # $@ is the inner shell's
part torch_step 80 bash -c 'python3 bench/peers/began_step_torch.py "$@" --precision fp32 --layout nchw &&
  python3 bench/peers/began_step_torch.py "$@" --precision tf32 --layout channels_last &&
  python3 bench/peers/began_step_torch.py "$@" --precision bf16 --layout channels_last --step-mode eager' \
  _ "${torch_args[@]}"
set_detail "$(wc -l 2>/dev/null <"$logs/torch_step.jsonl" || echo 0) rows (fp32 NCHW, tf32 channels-last: eager, cuda_graph; bf16 channels-last: eager)"

# The op rows last: they take what is left of the budget (the BEGAN step comparison above matters more; its
# cuda_graph row took 22 s of this part's 40).
part bench_ops 18 "$here/bin/bench_ops" --device cuda --benchmark_min_time=0.1
set_detail "$(grep -c '/real_time' "$logs/bench_ops.log") rows"

# The side-by-side rows (Python's standard library; "-" where a part gave no figure).
step_table() {
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

# ---- the table ----
table="$logs/gpu-check.txt"
{
  echo "atelier GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n)"
  echo "GPU: $gpu"
  echo "cuBLAS: ${cublas_dir:-NOT FOUND} ($soname); glibc here $(ldd --version 2>/dev/null | head -1 |
    grep -o '[0-9.]*$'), needed $(cat "$here/glibc-needed" 2>/dev/null)"
  echo "BEGAN losses below: loss_real,loss_fake_d,loss_fake_g,loss_d,loss_g,k_t,m_global"
  echo
  printf '%-12s %-14s %5s  %s\n' part result s detail
  for i in "${!names[@]}"; do
    printf '%-12s %-14s %5s  %s\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}" "${details[$i]}"
  done
  echo
  echo "bench_ops on the GPU (time per iteration, rate):"
  grep '/real_time' "$logs/bench_ops.log" | awk '{rate = ""; for (i = 6; i <= NF; ++i) rate = rate " " $i;
    printf "  %-44s %9s %s %s\n", $1, $2, $3, rate}'
  echo
  echo "BEGAN step 64x64x3, n = 64, batch 16 on this GPU (median of the timed steps; peak: the device allocator's):"
  step_table
  for i in "${!names[@]}"; do
    if [[ "${results[$i]}" != PASS ]]; then
      echo
      echo "---- ${names[$i]}: ${results[$i]}, last lines of its log ----"
      tail -40 "$logs/${names[$i]}.log"
    fi
  done
  echo
  echo "total $(($(date +%s) - started)) s"
} >"$table" 2>&1
cat "$table"

if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT" && cp "$table" "$OUT/gpu-check.txt"
  for name in "${names[@]}"; do cp "$logs/$name.log" "$OUT/$name.log" 2>/dev/null; done
fi
for r in "${results[@]}"; do [[ "$r" == PASS ]] || exit 1; done
exit 0

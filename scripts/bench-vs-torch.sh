#!/usr/bin/env bash
# Runs the op benchmarks of atelier (bench/bench_ops.cpp) and of PyTorch (bench/peers/ops_torch.py) with the same
# thread count, and prints one table: op | atelier ms | PyTorch ms | ratio | atelier GFLOP/s or GB/s.
# ratio = PyTorch ms / atelier ms: above 1 means atelier is faster. Times are medians over the repetitions.
#
#   scripts/bench-vs-torch.sh [REGEX]      REGEX filters the benchmark names (default: all), e.g. 'conv/.*all3'
#
# Environment:
#   ATELIER_NUM_THREADS  threads for both sides (default 2)
#   PYTHON               interpreter with torch (default /usr/bin/python3: Debian's python3-torch)
#   BUILD_DIR            atelier build directory (default build/cpu; configured and built when bench_ops is missing)
#   REPETITIONS          repetitions per benchmark (default 5)
#   MIN_TIME             seconds per repetition (default 0.5)
#   OUT_DIR              where the raw JSON of both sides goes (default: a temporary directory, removed)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

filter="${1:-.}"
threads="${ATELIER_NUM_THREADS:-2}"
python="${PYTHON:-/usr/bin/python3}"
build="${BUILD_DIR:-build/cpu}"
reps="${REPETITIONS:-5}"
min_time="${MIN_TIME:-0.5}"

die() {
  echo "bench-vs-torch: $*" >&2
  exit 1
}

[[ -x "$python" ]] || command -v "$python" >/dev/null 2>&1 || die "no Python interpreter '$python' (set PYTHON)"
"$python" -c 'import torch' 2>/dev/null ||
  die "PyTorch is not importable by $python; install Debian's python3-torch (apt-get install python3-torch) or set PYTHON"

bench="$build/bin/bench_ops"
if [[ ! -x "$bench" ]]; then
  echo "bench-vs-torch: $bench is missing; building it in $build" >&2
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DATELIER_CUDA=OFF >/dev/null ||
    die "cmake configure of $build failed"
  cmake --build "$build" -j"$(nproc)" --target bench_ops || die "building bench_ops in $build failed"
fi

if [[ -n "${OUT_DIR:-}" ]]; then
  out="$OUT_DIR"
  mkdir -p "$out"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi

export ATELIER_NUM_THREADS="$threads"
echo "bench-vs-torch: $threads threads, $reps repetitions of >= ${min_time}s, filter '$filter'" >&2
echo "bench-vs-torch: load before: $(uptime)" >&2

echo "--- atelier ($bench) ---" >&2
"$bench" --benchmark_filter="$filter" --benchmark_repetitions="$reps" --benchmark_min_time="$min_time" \
  --benchmark_report_aggregates_only=true --benchmark_out="$out/atelier.json" --benchmark_out_format=json >&2 ||
  die "$bench failed"

echo "--- PyTorch ($python bench/peers/ops_torch.py) ---" >&2
"$python" bench/peers/ops_torch.py --filter "$filter" --repetitions "$reps" --min-time "$min_time" \
  >"$out/torch.json" || die "bench/peers/ops_torch.py failed"

echo "bench-vs-torch: load after: $(uptime)" >&2

"$python" - "$out/atelier.json" "$out/torch.json" <<'EOF'
import json
import sys

with open(sys.argv[1]) as f:
    atelier = json.load(f)
with open(sys.argv[2]) as f:
    torch = json.load(f)

UNIT_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
ours = {}    # name -> (ms, rate string)
order = []
for b in atelier["benchmarks"]:
    name = b.get("run_name", b["name"])
    if name.endswith("/real_time"):  # Google Benchmark's suffix for UseRealTime()
        name = name[: -len("/real_time")]
    if b.get("error_occurred"):
        if name not in ours:
            order.append(name)
        ours[name] = (None, "skipped: " + b.get("error_message", ""))
        continue
    # With repetitions, only the median aggregate counts; a single run (no aggregates) is taken as is.
    if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
        continue
    ms = b["real_time"] * UNIT_TO_MS[b.get("time_unit", "ns")]
    if "GFLOP" in b:
        rate = "%.1f GFLOP/s" % b["GFLOP"]
    elif "GB" in b:
        rate = "%.1f GB/s" % b["GB"]
    else:
        rate = ""
    if name not in ours:
        order.append(name)
    ours[name] = (ms, rate)

theirs = {b["name"]: b["ms"] for b in torch["benchmarks"]}
for name in theirs:
    if name not in ours:
        order.append(name)

rows = [("op", "atelier ms", "PyTorch ms", "ratio", "atelier rate")]
for name in order:
    ms, rate = ours.get(name, (None, "missing"))
    tms = theirs.get(name)
    ratio = "%.2f" % (tms / ms) if ms and tms else "-"
    rows.append((name, "%.3f" % ms if ms else "-", "%.3f" % tms if tms else "-", ratio, rate))

widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
print("atelier %s threads, PyTorch %s threads (%s); ratio = PyTorch / atelier, > 1: atelier faster"
      % (atelier.get("context", {}).get("atelier_threads", "?"), torch["context"]["threads"],
         "torch " + torch["context"]["torch"]))
for i, r in enumerate(rows):
    print("| " + " | ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))) + " |")
    if i == 0:
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
EOF

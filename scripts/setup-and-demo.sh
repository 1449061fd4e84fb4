#!/usr/bin/env bash
# From a fresh Debian 12 machine to a trained BEGAN: installs the packages, builds Release (with CUDA when nvcc is
# found: build/cuda, else build/cpu), then trains BEGAN on Fashion-MNIST (32x32, one channel) on the CPU and
# prints where its report is. The run folder (out/demo, replaced on each run) holds metrics.csv, the sample
# grids, losses.svg, report.html, config.json and the checkpoints.
#
# The settings below were chosen by measurement (docs/began.md, "The demo"): a model small enough that the
# training takes under 10 minutes on 2 cores (ATELIER_NUM_THREADS=2), long enough that the samples look like
# clothes. After training, the script checks that BEGAN learned: the mean M_global (the convergence measure) over
# the last 10% of steps must be below 70% of the mean over the first 10%; it exits non-zero otherwise.
#
# Environment: CUDAARCHS (CUDA architectures, default 80;90), ATELIER_NATIVE=OFF (portable build),
# ATELIER_SKIP_DEPS=1 (do not check/install packages), ATELIER_NUM_THREADS (threads; default all cores),
# ATELIER_DEMO_STEPS (override the number of steps, e.g. for a quick look; at least 10).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Checked before any work: 0 would mean "--epochs decides" to began train (10 epochs, hours), and the check below
# needs at least 10 rows.
steps="${ATELIER_DEMO_STEPS:-4000}"
if ! [[ "$steps" =~ ^[0-9]+$ ]] || ((10#$steps < 10)); then
  echo "setup-and-demo: ATELIER_DEMO_STEPS must be a whole number of steps, at least 10; got '$steps'" >&2
  exit 2
fi
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

atelier_install_deps

if atelier_find_nvcc; then
  build=build/cuda
  cuda=ON
else
  echo "nvcc not found: building the CPU-only configuration"
  build=build/cpu
  cuda=OFF
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DATELIER_CUDA="$cuda" -DATELIER_NATIVE="${ATELIER_NATIVE:-ON}"
cmake --build "$build" -j"$(nproc)"

began="$build/bin/began"
if [[ ! -x "$began" ]]; then
  echo "setup-and-demo: $began was not built" >&2
  exit 1
fi

# The demo's settings (see docs/began.md, "The demo"); $steps is set and checked at the top.
run=out/demo
rm -rf "$run"  # the demo's own folder: each demo run starts afresh
mkdir -p out

echo "=== BEGAN on Fashion-MNIST: $steps steps (run folder $run) ==="
"$began" train --data fashion-mnist --image-size 32 --channels 1 --n 16 --h 64 --batch 16 --gamma 0.7 \
  --lr 2e-4 --lambda-k 0.01 --steps "$steps" --seed 1 --sample-every 500 --checkpoint-every 2000 --out "$run"

# Did it learn? Mean M_global over the first and the last 10% of the steps (column m_global of metrics.csv).
awk -F, '
  NR == 1 { for (i = 1; i <= NF; i++) if ($i == "m_global") col = i; next }
  { m[++n] = $col }
  END {
    if (!col || n < 10) { print "setup-and-demo: metrics.csv has no m_global column or under 10 rows"; exit 1 }
    k = int(n / 10); first = 0; last = 0
    for (i = 1; i <= k; i++) { first += m[i]; last += m[n - k + i] }
    first /= k; last /= k
    printf "M_global: mean %.4f over the first %d steps, %.4f over the last %d (ratio %.2f; must be below 0.70)\n",
           first, k, last, k, last / first
    if (!(last < 0.7 * first)) { print "setup-and-demo: FAILED: BEGAN did not converge enough"; exit 1 }
  }' "$run/metrics.csv"

echo
echo "Report: $PWD/$run/report.html (open it in a browser; the last samples are $run/samples/final.png)"
echo "The gradient checks of every differentiable op: $build/bin/gradcheck"

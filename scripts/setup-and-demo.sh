#!/usr/bin/env bash
# From a fresh Debian 12 machine to a trained BEGAN: installs the packages, builds Release (with CUDA when nvcc is
# found: build/cuda, else build/cpu), then trains BEGAN on Fashion-MNIST (32x32, one channel) on the CPU and
# prints where its report is. The run folder (out/demo, replaced on each run) holds metrics.csv, the sample
# grids, losses.svg, report.html, config.json and the checkpoints.
#
# The settings below were chosen by measurement (docs/began.md, "The demo"): a model small enough that the
# training takes under 10 minutes on 2 cores (ATELIER_NUM_THREADS=2), long enough that the samples look like
# clothes. After training, the script checks that BEGAN learned: the mean M_global (the convergence measure) over
# the last 10% of steps must be below 70% of the mean over the first 10%, and L(G(z)) / L(x) over the last 5% within
# 15% of gamma (the equilibrium still held: no collapse under way); it exits non-zero otherwise.
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
gamma=0.7
"$began" train --data fashion-mnist --image-size 32 --channels 1 --n 16 --h 64 --batch 16 --gamma "$gamma" \
  --lr 2e-4 --lambda-k 0.01 --steps "$steps" --seed 1 --sample-every 500 --checkpoint-every 2000 --out "$run"

# Did it learn? Mean M_global over the first and the last 10% of the steps (column m_global of metrics.csv).
# Is it still learning at the end? BEGAN keeps L(G(z)) at gamma L(x) (k_t steers it there); a collapse under way
# breaks that balance first: in a 6,000-step run of these settings that ended in dim blobs, L(G(z)) / L(x) over the
# last 5% of steps was 0.85 against gamma 0.7, where healthy runs stay within 0.64-0.76 in any 100 steps after the
# first 100 and 0.70 over their last 5% (docs/began.md, "The demo"). So the ratio over the last 5% must be within
# 15% of gamma (runs of 2,000 steps and more: shorter ones have not settled).
awk -F, -v gamma="$gamma" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  { m[++n] = $col["m_global"]; real[n] = $col["loss_real"]; fake[n] = $col["loss_fake_g"] }
  END {
    if (!col["m_global"] || !col["loss_real"] || !col["loss_fake_g"] || n < 10) {
      print "setup-and-demo: metrics.csv lacks m_global, loss_real or loss_fake_g, or has under 10 rows"; exit 1
    }
    k = int(n / 10); first = 0; last = 0
    for (i = 1; i <= k; i++) { first += m[i]; last += m[n - k + i] }
    first /= k; last /= k
    printf "M_global: mean %.4f over the first %d steps, %.4f over the last %d (ratio %.2f; must be below 0.70)\n",
           first, k, last, k, last / first
    if (!(last < 0.7 * first)) { print "setup-and-demo: FAILED: BEGAN did not converge enough"; exit 1 }
    if (n < 2000) { printf "L(G(z)) / L(x) at the end: not checked (%d steps, under 2,000)\n", n; exit 0 }
    tail = int(n / 20); r = 0; f = 0
    for (i = n - tail + 1; i <= n; i++) { r += real[i]; f += fake[i] }
    printf "L(G(z)) / L(x): %.3f over the last %d steps (gamma %.2f; must be within 15%% of it)\n", f / r, tail, gamma
    if (!(f / r > 0.85 * gamma && f / r < 1.15 * gamma)) {
      print "setup-and-demo: FAILED: the equilibrium was lost at the end (a collapse under way?): see the last grids"
      exit 1
    }
  }' "$run/metrics.csv"

echo
echo "Report: $PWD/$run/report.html (open it in a browser; the last samples are $run/samples/final.png)"
echo "The gradient checks of every differentiable op: $build/bin/gradcheck"

#!/usr/bin/env bash
# From a fresh Debian 12 machine to a running atelier: installs the packages, builds Release (with CUDA when nvcc
# is found: build/cuda, else build/cpu) and runs the main program. For now that is `gradcheck`, which checks every
# differentiable op's gradient against central differences; arguments are passed on to it.
#
# Environment: CUDAARCHS (CUDA architectures, default 80;90), ATELIER_NATIVE=OFF (portable build),
# ATELIER_SKIP_DEPS=1 (do not check/install packages).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
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

demo="$build/bin/gradcheck"
if [[ ! -x "$demo" ]]; then
  echo "setup-and-demo: $demo was not built (is autograd/tools/gradcheck_main.cpp there?)" >&2
  exit 1
fi
echo "=== $demo $* ==="
"$demo" "$@"

#!/usr/bin/env bash
# The line budget: each floor's code (docs/architecture.md, section 1) must stay within a number of lines, so that
# the framework stays small enough to read (tinygrad's CI does the same for its one budget). A line counts when it
# holds code: not blank, not only a // comment. The budgets leave room for this round's work; raising one is a
# decision, made in the commit that needs it and said in its message, not a way to make the test pass. The engine,
# autograd's reverse pass, has its own budget: the whole idea should stay readable on a screen or two.
#
#   tests/tools/check_line_budget.sh REPOSITORY_ROOT    (the ctest entry `line_budget`)
#
# Prints every budget with its count, and fails naming each one exceeded.
set -uo pipefail
root="${1:?usage: check_line_budget.sh REPOSITORY_ROOT}"
source "$(dirname "${BASH_SOURCE[0]}")/check_lib.sh"

# What a budget covers: a floor's folder and everything under it, or (with a trailing /*) the files directly in a
# folder, or one file.
#   what            budget  code lines when set (2026-12-01)
budgets=(
  "backends/*       2350" # 1,916: the Backend interface, registry, allocators, thread pool, shared math (2,101 on 12-02; 2,216 with pooling's args and shared arithmetic, 2,278 with normalisation's; set at 2,150, then 2,250)
  "backends/cpu     4400" # 2,730 (3,045 on 12-03, plain GEMMs on the packed kernel; 3,111 with the Winograd chunk rule; 3,235 with log_softmax as one kernel each way; 3,341 with the vector maximum and where's broadcast runs; 3,414 with the float32 log and the softmax mode; 3,536 with pooling; 3,732 with normalisation; 3,963 with its float registers and column layout; 4,070 with small groups in batches; 4,121 with short channels read per element; 4,262 with leaky_relu, silu and gelu; 4,330 with where's blend and softplus in one pass; set at 3,000, then 3,100, 3,150, 3,300, 3,400, 3,450, 3,600, 3,800, 4,050, 4,100, 4,200, 4,300): the CPU kernels (Eigen, the packed GEMM, Winograd)
  "backends/cuda    3000" # 2,416 (2026-12-02, with the direct kernels; 2,136 with Winograd at 2,400; 1,724 when set at 1,900; 2,706 with pooling on 12-03, at 2,650; 2,846 with normalisation, at 2,750; 2,956 with leaky_relu, silu and gelu, at 2,900): the CUDA kernels, cuBLAS calls, graphs
  "tensor           2250" # 1,941 (2,145 on 12-03 with pooling's and normalisation's raw ops; set at 2,150)
  "autograd         1750" # 1,331 (1,454 on 12-03 with matmul's column-major gradients, disjoint gradient slices, softmax and binary cross-entropy; 1,599 with dropout, batch and layer norm and pooling; 1,653 with leaky_relu, silu and gelu; 1,725 with stack, amin, var, logsumexp, maximum and minimum; set at 1,450, then 1,500, 1,650, 1,700)
  "autograd/engine.cpp 150" # 135: the reverse pass
  "nn               2600" # 2,326 (2,561 with the Softplus layer; set at 2,550)
  "began            5850" # 5,331: the model, trainer, data, reports and the `began` tools
)

# code_lines DEPTH PATH: the lines of code of the .h, .cpp, .cu and .cuh files at PATH (a folder: searched DEPTH
# levels down).
code_lines() {
  find "$2" -maxdepth "$1" -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) \
    -exec cat {} + | grep -cvE '^[[:space:]]*(//.*)?$'
}

printf '%-22s %8s %8s\n' "budget" "lines" "limit"
for entry in "${budgets[@]}"; do
  read -r what limit <<<"$entry"
  depth=100
  path="$root/$what"
  if [[ "$what" == */\* ]]; then
    depth=1
    path="$root/${what%/\*}"
  fi
  if [[ ! -e "$path" ]]; then
    fail "$what: no such file or folder under $root"
    continue
  fi
  lines="$(code_lines "$depth" "$path")"
  printf '%-22s %8d %8d\n' "$what" "$lines" "$limit"
  if ((lines > limit)); then
    fail "$what has $lines lines of code, over its budget of $limit: make it smaller, or raise the budget in" \
      "tests/tools/check_line_budget.sh on purpose and say why in the commit"
  fi
done

finish "line_budget"

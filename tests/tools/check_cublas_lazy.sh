#!/usr/bin/env bash
# A CUDA build's programs do not load cuBLAS until their first GEMM on the GPU (backends/cuda/cublas_api.h): none
# of them names libcublas among the libraries it needs, and a program run without touching a GPU (gradcheck
# --help) never maps it. Usage: check_cublas_lazy.sh <gradcheck> <program>...
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 <gradcheck> <program>..." >&2; exit 2; }
status=0
for program in "$@"; do
  needed="$(objdump -p "$program" | awk '$1 == "NEEDED" {print $2}')"
  if grep -q '^libcublas' <<<"$needed"; then
    echo "FAIL: $program links cuBLAS (NEEDED: $(tr '\n' ' ' <<<"$needed")); it should open it at its first GEMM" >&2
    status=1
  fi
done

# The loader's own account of what it opened: LD_DEBUG=files names every library it maps.
loaded="$(LD_DEBUG=files "$1" --help 2>&1 >/dev/null)"
if grep -q 'libcublas' <<<"$loaded"; then
  echo "FAIL: $1 --help mapped cuBLAS:" >&2
  grep 'libcublas' <<<"$loaded" | head -5 >&2
  status=1
fi
grep -q 'file=' <<<"$loaded" || { echo "FAIL: LD_DEBUG=files printed nothing; the check saw nothing" >&2; status=1; }
[[ $status -eq 0 ]] && echo "ok: $# programs need no cuBLAS at start; $1 --help maps none"
exit "$status"

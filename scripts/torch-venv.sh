#!/usr/bin/env bash
# Makes the Python virtual environment with current PyTorch from PyPI (MKL + oneDNN on x86-64), the speed and
# golden-step reference of bench/peers/, and prints its interpreter's path for $PYTHON.
#
#   scripts/torch-venv.sh    creates (or reuses) the environment, then prints e.g. /repo/.venv-torch/bin/python
#   PYTHON=$(scripts/torch-venv.sh) bench/peers/began_step_torch.py --bench
#
# Debian's python3-torch (1.13) links the reference BLAS, so its GEMMs are no fair reference; PyPI's wheel is.
# The wheel pulls NVIDIA's CUDA libraries as dependencies (about 3 GB in all); they are not needed on the CPU,
# but pip has no way to leave them out, and download.pytorch.org's CPU-only index is not reachable from every
# machine we use.
#
# Environment:
#   ATELIER_TORCH_VENV   where the environment goes (default .venv-torch in the repository, git-ignored)
#   ATELIER_TORCH_SPEC   the pip requirement for torch (default: torch, the newest release)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${ATELIER_TORCH_VENV:-$PWD/.venv-torch}"
spec="${ATELIER_TORCH_SPEC:-torch}"

if ! "$venv/bin/python" -c 'import torch' >/dev/null 2>&1; then
  echo "torch-venv: creating $venv with '$spec' from PyPI (a few GB, several minutes)" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet "$spec" numpy >&2
fi
echo "torch-venv: $("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)')" >&2
echo "$venv/bin/python"

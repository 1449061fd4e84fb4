# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/setup-and-demo.sh: the Debian 12 packages atelier needs, installed in one
# place, and the search for nvcc.
#
# Environment: ATELIER_SKIP_DEPS=1 skips the package step; DEBIAN_FRONTEND defaults to noninteractive.

# build-essential, cmake: the toolchain (g++ 12, CMake 3.25). libeigen3-dev: CPU GEMM. zlib1g-dev: gzip'd IDX
# data sets. nlohmann-json3-dev: safetensors headers. libpng-dev: BEGAN's sample grids as PNG (the reference PNG
# library: zlib compression and chunk CRCs done right). The toolchain and these four are all the libraries need;
# the rest serve what is built beside them (each behind an option, ON by default): doctest-dev for the tests,
# libbenchmark-dev for the benchmarks, libcli11-dev for the `began` command's argument parsing. clang-format: the
# format test. dataset-fashion-mnist: the Fashion-MNIST IDX files under /usr/share/datasets/fashion-mnist/
# (began/data/fashion_mnist.cpp reads them). zlib1g-dev and libpng-dev also ship the static libz.a and libpng16.a
# that scripts/gpu-check.sh links into its portable programs. libjpeg-dev (libjpeg62-turbo-dev): `began train --data
# folder` decodes JPEG photos with libjpeg-turbo, the JPEG library every distribution keeps patched (baseline,
# progressive, CMYK/YCCK, and DCT-domain scaled decoding, which downsizes LFW's 250x250 photos almost for free);
# it ships the static libjpeg.a for scripts/gpu-check.sh too.
ATELIER_APT_PACKAGES=(
  build-essential
  cmake
  libeigen3-dev
  doctest-dev
  libbenchmark-dev
  zlib1g-dev
  nlohmann-json3-dev
  libcli11-dev
  libpng-dev
  libjpeg-dev
  clang-format
  dataset-fashion-mnist
)

# Installs the missing packages with apt-get (through sudo when not root). Does nothing when all are present.
atelier_install_deps() {
  if [[ "${ATELIER_SKIP_DEPS:-0}" == 1 ]]; then
    echo "deps: ATELIER_SKIP_DEPS=1, not checking packages"
    return 0
  fi
  local missing=() pkg
  for pkg in "${ATELIER_APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    echo "deps: all packages present (${ATELIER_APT_PACKAGES[*]})"
    return 0
  fi
  local sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
      echo "deps: missing packages (${missing[*]}) and not root, and sudo is not installed" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND="${DEBIAN_FRONTEND:-noninteractive}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND="${DEBIAN_FRONTEND:-noninteractive}" \
    apt-get install -y --no-install-recommends "${missing[@]}"
}

# Succeeds when nvcc can be used, putting /usr/local/cuda/bin on PATH if nvcc is only found there.
atelier_find_nvcc() {
  if command -v nvcc >/dev/null; then
    return 0
  fi
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then
    export PATH="/usr/local/cuda/bin:$PATH"
    return 0
  fi
  return 1
}

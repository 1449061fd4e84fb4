#!/usr/bin/env bash
# The GPU check in one call. Here (no GPU needed):
#
#   scripts/gpu-check.sh --prepare
#
# builds Release for sm_90 (CUDAARCHS overrides), portable (-DATELIER_NATIVE=OFF), in build/gpu-check, and puts
# into the git-ignored .gpu/ what a GPU machine needs: bin/ (atelier_cuda_tests, gradcheck, bench_ops, bench_train,
# bench_op_table, began), lib/ (Google Benchmark's shared library and the C++ runtime it links, for the three
# benchmark programs alone: Debian ships Google Benchmark shared only) and run.sh (from scripts/gpu-check-run.sh). The programs carry
# libstdc++, libgcc, the CUDA runtime, zlib, libpng and libjpeg statically; they need only glibc, the driver's
# libcuda and cuBLAS (opened at the first GEMM, not linked), which is not carried (libcublasLt alone is over 500 MB):
# run.sh finds the GPU machine's own.
# --prepare fails if ldd shows any other library, or if .gpu/ and the tracked tree together pass 64 MiB.
#
# Then, on the GPU machine, from the repository root (nothing is installed there), one device run each:
#
#   bash .gpu/run.sh          # the check plan: correctness, the n = 64 step beside PyTorch, the op rows
#   bash .gpu/run.sh targets  # the targets plan: every step case of the CUDA speed issue beside PyTorch, and
#                             # one timed epoch at n = 128
#
# Each prints one table and copies it (and the logs) to $OUT when OUT is set (scripts/gpu-check-run.sh's header;
# GPU_CHECK_DRY_RUN=1 runs either plan's plumbing on the CPU, tests/tools/check_gpu_check.sh does).
#
# Environment: CUDAARCHS (default 90), ATELIER_JOBS (build jobs, default nproc), ATELIER_SKIP_DEPS=1 (do not
# check the Debian packages).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage="usage: scripts/gpu-check.sh --prepare (build .gpu/ for a GPU machine; then run bash .gpu/run.sh there)"
if [[ $# -ne 1 || "$1" != --prepare ]]; then
  if [[ $# -eq 1 && ("$1" == -h || "$1" == --help) ]]; then
    echo "$usage"
    exit 0
  fi
  echo "gpu-check: $usage" >&2
  exit 2
fi

fail() {
  echo "gpu-check --prepare: FAILED: $*" >&2
  exit 1
}

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
atelier_install_deps
atelier_find_nvcc || fail "nvcc not found (install the CUDA toolkit or put it on PATH)"

build=build/gpu-check
dest=.gpu
archs="${CUDAARCHS:-90}"
jobs="${ATELIER_JOBS:-$(nproc)}"
programs=(atelier_cuda_tests gradcheck bench_ops bench_train bench_op_table began)
bench_programs=(bench_ops bench_train bench_op_table)
limit_bytes=$((64 * 1024 * 1024))

# The static zlib, libpng and libjpeg (Debian's -dev packages ship them beside the shared ones).
static_lib() {
  local path
  path="$(g++ -print-file-name="$1")"
  [[ "$path" == /* && -f "$path" ]] || fail "$1 not found (zlib1g-dev, libpng-dev and libjpeg-dev ship it)"
  echo "$path"
}
zlib_a="$(static_lib libz.a)"
png_a="$(static_lib libpng16.a)"
jpeg_a="$(static_lib libjpeg.a)"

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi

echo "=== configure $build (Release, sm_$archs, portable, static runtimes) ==="
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DATELIER_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$archs" \
  -DATELIER_NATIVE=OFF -DATELIER_WERROR=ON -DATELIER_STATIC_RUNTIME=ON -DCMAKE_SKIP_RPATH=ON \
  -DZLIB_USE_STATIC_LIBS=ON -DZLIB_LIBRARY_RELEASE="$zlib_a" -DPNG_LIBRARY_RELEASE="$png_a" \
  -DJPEG_LIBRARY_RELEASE="$jpeg_a" "${launcher[@]}"
echo "=== build ${programs[*]} ($jobs jobs) ==="
cmake --build "$build" -j"$jobs" --target "${programs[@]}"

rm -rf "$dest"
mkdir -p "$dest/bin" "$dest/lib"
for p in "${programs[@]}"; do
  cp "$build/bin/$p" "$dest/bin/$p"
  strip --strip-unneeded "$dest/bin/$p"
done

# cuBLAS's directory here, for ldd: the CUDA toolkit's lib64.
nvcc_path="$(command -v nvcc)"
cuda_lib="$(cd "$(dirname "$nvcc_path")/.." && pwd)/lib64"
[[ -d "$cuda_lib" ]] || fail "the CUDA toolkit's lib64 ($cuda_lib) is missing"

# The benchmark programs' shared libraries, copied from where they resolve here.
for lib in libbenchmark.so libstdc++.so.6 libgcc_s.so.1; do
  resolved="$(ldd "$dest/bin/bench_ops" | awk -v name="$lib" 'index($1, name) == 1 && $3 ~ /^\// {print $3; exit}')"
  [[ -n "$resolved" ]] || fail "bench_ops does not link $lib as expected ($(ldd "$dest/bin/bench_ops" | tr '\n' ' '))"
  cp -L "$resolved" "$dest/lib/$(basename "$resolved")"
done

# ldd check: glibc and libcuda for every program (cuBLAS, opened at the first GEMM, is not linked; it is still
# allowed here, with the libgcc_s it needs); the benchmark programs may also load what lib/ carries, from lib/.
glibc='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1)$'
cuda='^(libcuda\.so\.1|libcublas\.so\.[0-9]+|libcublasLt\.so\.[0-9]+)$'
status=0
for p in "${programs[@]}"; do
  bin="$dest/bin/$p"
  needed="$(objdump -p "$bin" | awk '$1 == "NEEDED" {print $2}')"
  while read -r soname path; do
    [[ -z "$soname" ]] && continue
    if [[ "$path" == "not-found" ]]; then
      echo "ldd $p: $soname not found" >&2
      status=1
    elif [[ "$soname" =~ $glibc || "$soname" =~ $cuda ]]; then
      :
    elif [[ "$soname" == libgcc_s.so.1 ]] && ! grep -qx "libgcc_s.so.1" <<<"$needed"; then
      : # cuBLAS's own need, not ours (ours is linked statically)
    elif [[ " ${bench_programs[*]} " == *" $p "* && "$path" == "$(pwd)/$dest/lib/"* ]]; then
      :
    else
      echo "ldd $p: $soname ($path) is neither glibc, libcuda nor cuBLAS" >&2
      status=1
    fi
  done < <(LD_LIBRARY_PATH="$cuda_lib:$(pwd)/$dest/lib" ldd "$bin" |
    awk '/=> not found/ {print $1, "not-found"; next} /=>/ {print $1, $3; next} {n = split($1, a, "/"); print a[n], $1}')
done
[[ $status -eq 0 ]] || fail "a program links a library that does not travel (see above)"

# The cuBLAS the programs open at their first GEMM (run.sh looks for this file on the GPU machine): libcublas.so.N,
# N the major version of the cuBLAS headers they were compiled against (backends/cuda/cublas_api.cu); and the
# newest glibc symbol version they need (the GPU machine's glibc must be at least that).
cublas_header="$(cd "$(dirname "$nvcc_path")/.." && pwd)/include/cublas_api.h"
cublas_major="$(awk '$1 == "#define" && $2 == "CUBLAS_VER_MAJOR" {print $3}' "$cublas_header" 2>/dev/null)"
[[ "$cublas_major" =~ ^[0-9]+$ ]] || fail "no CUBLAS_VER_MAJOR in $cublas_header"
cublas_soname="libcublas.so.$cublas_major"
echo "$cublas_soname" >"$dest/cublas-soname"
glibc_needed="$(for p in "${programs[@]}"; do objdump -T "$dest/bin/$p"; done | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
echo "$glibc_needed" >"$dest/glibc-needed"

cp scripts/gpu-check-run.sh "$dest/run.sh"
chmod +x "$dest/run.sh" "$dest"/bin/*

dest_bytes="$(du -sb "$dest" | cut -f1)"
tree_bytes="$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)"
total=$((dest_bytes + tree_bytes))
echo "=== .gpu/ ==="
(cd "$dest" && du -b bin/* lib/* run.sh | sort -k2)
echo "cuBLAS wanted: $cublas_soname; newest glibc symbol: $glibc_needed"
awk -v d="$dest_bytes" -v t="$tree_bytes" \
  'BEGIN {printf ".gpu/ %.1f MiB + tracked tree %.1f MiB = %.1f MiB (limit 64 MiB)\n", d / 2^20, t / 2^20, (d + t) / 2^20}'
[[ $total -lt $limit_bytes ]] || fail ".gpu/ and the tracked tree are $total bytes, over 64 MiB"
echo "gpu-check --prepare: ready. On the GPU machine, from the repository root: bash .gpu/run.sh"

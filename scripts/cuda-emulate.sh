#!/usr/bin/env bash
# Runs the CUDA test program (tests/cuda/) against the CUDA backend emulated on the host, for machines without a
# GPU: backends/cuda/{copy_fill,random,elementwise,reduce,conv,winograd,direct_conv,gemm,index,upsample,pool,norm,
# optimizer,graph,host_copies}.cu are compiled against host stand-ins for the launcher and the context (tests/cuda_emulation/fake/), so their
# one-thread-per-index functors run in host loops on host memory, their block-cooperative kernels (the
# reductions) as fibers on one host thread that run a block's threads one at a time from one __syncthreads to the
# next, in a seeded pseudo-random order (tests/cuda_emulation/block_threads.h), and their GEMMs on a column-major
# host GEMM that checks its arguments as cuBLAS does (tests/cuda_emulation/emulated_backend.cpp, which also checks
# copies, fills and captures as the device would; the launchers check the GPU's launch limits at compile time,
# backends/cuda/launch_config.h). It checks the kernels' index math, that the blocks' results do not depend on
# their threads' order between syncs (a missing sync reads stale or poisoned shared memory, the same way every
# run), that every thread of a block reaches the same syncs (a divergent one is an error naming the kernel and
# block), and the CUDA tests themselves; it proves nothing about warps, the GPU's memory model, atomics, cuBLAS or
# the device. Memory comes
# from the backends' caching allocator over host memory, so the "no cudaMalloc after warm-up" test means something
# too. The block kernels run on the program's one thread (the CPU library's pool aside): on a 2-core VM the whole
# program took 83 s (83 s of CPU; the 1-minute load average fell from 9.7 to 3.3 meanwhile), where 256 OS threads
# per block took 165 s (191 s of CPU) and drove the load average past 100 (docs/gpu.md, "Reductions").
#
#   scripts/cuda-emulate.sh [doctest options]      e.g. -tc="parity*"
#
# Needs nvcc (PATH, or /usr/local/cuda/bin) and a CPU-only build's libraries, in build/cpu or $ATELIER_EMULATION_LIB
# (scripts/test.sh makes build/cpu; or: cmake -S . -B build/cpu -DATELIER_CUDA=OFF && cmake --build build/cpu).
# Objects go to $ATELIER_EMULATION_OUT (default build/cuda-emulation). A CPU-only configuration where nvcc is
# found registers this script as the ctest `cuda_emulation` (label long), with its own build folder.
# $ATELIER_EMULATION_JOBS: how many compiles run at once (default: the number of cores).
# $ATELIER_EMULATION_SEED: the seed of the block threads' orders (an unsigned 64-bit integer, default 1; the
# program prints it first): the same seed replays a failing run exactly, another tries other orders.
# $ATELIER_EMULATION_FLAGS: host compiler flags for every object and the link, e.g. "-fsanitize=thread -g":
# ThreadSanitizer then reports a missing sync() in a block kernel as a data race on its shared array, naming the
# line, whatever order the seed gives (checked: it reports the reduction with one sync taken out; the plain
# emulation shows it as a wrong value). Give it its own $ATELIER_EMULATION_OUT, and set ATELIER_NUM_THREADS=1
# unless $ATELIER_EMULATION_LIB is a ThreadSanitizer build (the CPU thread pool of an uninstrumented library looks
# racy to it), e.g.
#   ATELIER_EMULATION_FLAGS="-fsanitize=thread -g" ATELIER_EMULATION_OUT=build/cuda-emulation-tsan \
#     ATELIER_NUM_THREADS=1 scripts/cuda-emulate.sh -tc="cuda reduce*"
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
lib="${ATELIER_EMULATION_LIB:-build/cpu}"
out="${ATELIER_EMULATION_OUT:-build/cuda-emulation}"
for a in atelier atelier_began atelier_testing; do
  [[ -f "$lib/lib$a.a" ]] || { echo "cuda-emulate: $lib/lib$a.a is missing: build the CPU-only configuration first" >&2; exit 2; }
done
command -v nvcc > /dev/null || { echo "cuda-emulate: nvcc not found" >&2; exit 2; }
cuda_include="$(dirname "$(command -v nvcc)")/../include"
cuda_lib="$(dirname "$(command -v nvcc)")/../lib64"
mkdir -p "$out"
read -r -a extra <<< "${ATELIER_EMULATION_FLAGS:-}"
nvcc_extra=()
if ((${#extra[@]} > 0)); then nvcc_extra=(-Xcompiler "$(IFS=,; echo "${extra[*]}")"); fi

# At most $ATELIER_EMULATION_JOBS compiles at once (default: the cores), so a small machine (CI's 2 cores) is not
# handed two dozen compilers of ~0.5-1 GB each at once; every job's status is checked at the end.
max_jobs="${ATELIER_EMULATION_JOBS:-$(nproc)}"
pids=()
start() {
  while (($(jobs -rp | wc -l) >= max_jobs)); do wait -n || true; done
  "$@" &
  pids+=($!)
}
for family in copy_fill random elementwise reduce conv winograd direct_conv gemm index upsample pool norm optimizer graph host_copies; do
  start nvcc -std=c++20 -O1 --expt-relaxed-constexpr "${nvcc_extra[@]}" -Itests/cuda_emulation/fake -I. \
    -c "backends/cuda/$family.cu" -o "$out/$family.o"
done
start g++ -std=c++20 -O1 "${extra[@]}" -I. -I"$cuda_include" -c tests/cuda_emulation/emulated_backend.cpp \
  -o "$out/emulated_backend.o"
for source in tests/cuda/*.cpp tests/parity/parity.cpp; do
  start g++ -std=c++20 -O1 "${extra[@]}" -I. -I"$cuda_include" -DATELIER_SOURCE_DIR="\"$PWD\"" -c "$source" \
    -o "$out/$(basename "$source" .cpp).o"
done
for pid in "${pids[@]}"; do wait "$pid"; done

# The emulation's objects come first: they define cuda_backend_or_null (the CPU-only library's returns null),
# the CUDA backend's members, and the cuBLAS and cudaMemsetAsync entry points the emulated families call.
g++ "${extra[@]}" -o "$out/atelier_cuda_tests_emulated" "$out"/*.o "$lib/libatelier_began.a" "$lib/libatelier_testing.a" \
  "$lib/libatelier.a" -L"$cuda_lib" -lcudart -lpng -ljpeg -lz -lpthread
"$out/atelier_cuda_tests_emulated" "$@"

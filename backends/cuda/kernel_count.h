// The count of device work items the CUDA backend has queued: each kernel launch (launch.h's launchers, the
// block reduction), each cuBLAS GEMM call and each device-side copy or fill (cudaMemcpyAsync between device
// buffers, cudaMemsetAsync) adds one where it is queued. CudaBackend::kernels_launched() reads it, and the
// profiler (backends/profiler.h) shows it per primitive, so the launches a step costs can be counted, also under
// the CUDA emulation, without a GPU. A cuBLAS call counts as one although cuBLAS may run two kernels (a split-K
// reduction); a replayed graph counts nothing (its kernels were counted when they were captured).
#pragma once

#include <atomic>
#include <cstdint>

namespace atelier::cuda {

inline std::atomic<int64_t> g_kernels_queued{0};

inline void count_kernel() { g_kernels_queued.fetch_add(1, std::memory_order_relaxed); }
inline int64_t kernels_queued() { return g_kernels_queued.load(std::memory_order_relaxed); }

}  // namespace atelier::cuda

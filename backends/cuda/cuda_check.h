// Checked CUDA and cuBLAS calls: ATELIER_CUDA_CHECK(cudaMalloc(&p, n)) throws atelier::Error naming the call, the
// file and line, and the error string; ATELIER_CUDA_CLEANUP(cudaFree(p)), for destructors and error paths, reports
// a failure on stderr and clears it instead. Every CUDA call in atelier goes through it, except the one probe in
// CudaBackend::available(), where an error simply means "no usable device", and cudaMalloc, whose out-of-memory
// error becomes a message naming the size (CudaBackend::allocate).
#pragma once

#include <cstdio>
#include <sstream>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backends/cuda/cublas_api.h"
#include "backends/error.h"

namespace atelier::cuda_detail {

[[noreturn]] inline void throw_cuda_error(const char* call, const char* file, int line, cudaError_t err) {
  // The runtime keeps the last error of any call for cudaGetLastError, which every launch checks: clear it, or the
  // next launch after this error is caught (a failed capture, then eager steps) would report it again. A sticky
  // error (a kernel's fault) stays and fails the next call anyway.
  (void)cudaGetLastError();
  std::ostringstream os;
  os << "CUDA call " << call << " failed at " << file << ":" << line << ": " << cudaGetErrorString(err) << " ("
     << cudaGetErrorName(err) << ")";
  throw Error(os.str());
}

// A call that must not throw (in a destructor, or cleaning up after another error): a failure is reported on
// stderr and cleared from the last-error slot, so the next launch's check does not report it as its own (a sticky
// error, a kernel's fault, stays and fails the next checked call anyway). At exit the runtime may already be
// unloading (cudaErrorCudartUnloading): that is not reported.
inline void report_cleanup_error(const char* call, const char* file, int line, cudaError_t err) noexcept {
  if (err == cudaSuccess) return;
  (void)cudaGetLastError();
  if (err == cudaErrorCudartUnloading) return;
  std::fprintf(stderr, "atelier: CUDA call %s failed at %s:%d: %s (%s); going on\n", call, file, line,
               cudaGetErrorString(err), cudaGetErrorName(err));
}

[[noreturn]] inline void throw_cublas_error(const char* call, const char* file, int line, cublasStatus_t status) {
  std::ostringstream os;
  const cuda::Cublas& api = cuda::cublas_api();  // loaded: the failed call went through it
  os << "cuBLAS call " << call << " failed at " << file << ":" << line << ": " << api.status_string(status) << " ("
     << api.status_name(status) << ")";
  throw Error(os.str());
}

}  // namespace atelier::cuda_detail

#define ATELIER_CUDA_CHECK(call)                                                              \
  do {                                                                                        \
    const cudaError_t atelier_cuda_err_ = (call);                                             \
    if (atelier_cuda_err_ != cudaSuccess) {                                                   \
      ::atelier::cuda_detail::throw_cuda_error(#call, __FILE__, __LINE__, atelier_cuda_err_); \
    }                                                                                         \
  } while (0)

// For cleanup calls, which must not throw: reports and clears a failure (report_cleanup_error) and goes on.
#define ATELIER_CUDA_CLEANUP(call) ::atelier::cuda_detail::report_cleanup_error(#call, __FILE__, __LINE__, (call))

#define ATELIER_CUBLAS_CHECK(call)                                                                   \
  do {                                                                                               \
    const cublasStatus_t atelier_cublas_status_ = (call);                                            \
    if (atelier_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                           \
      ::atelier::cuda_detail::throw_cublas_error(#call, __FILE__, __LINE__, atelier_cublas_status_); \
    }                                                                                                \
  } while (0)

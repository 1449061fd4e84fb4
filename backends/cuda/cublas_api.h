// cuBLAS, loaded when atelier first needs it rather than when a program starts.
//
// Linking libcublas would make the dynamic loader map it, and the 540 MB libcublasLt it needs, into every program of
// a CUDA build as it starts, GPU or not: measured here, `gradcheck --help` took 0.13 s and 214 MiB resident (under
// 0.01 s and 4 MiB without it), and a training run on the CPU carried those 214 MiB. So atelier's programs do not
// link cuBLAS. cublas_api() opens it with dlopen at the first call (the first GEMM on the GPU makes the handle:
// Context::cublas) and resolves the few entry points atelier calls into the table below; the calls go through it:
//
//   const cuda::Cublas& api = cuda::cublas_api();
//   ATELIER_CUBLAS_CHECK(api.gemm_ex(handle, ...));
//
// Which file: $ATELIER_CUBLAS_LIBRARY when set (a path, or a file name the loader looks up), else
// libcublas.so.<major> (the major version of the cuBLAS headers this was compiled against) through the loader's
// usual search (LD_LIBRARY_PATH, the program's run path, the system's library folders), else the same name in the
// CUDA toolkit's library folder that the build found. A missing library or entry point is an atelier::Error naming
// the file, the loader's reason and what to set; it is thrown again by every later call (nothing is half loaded).
// The library stays loaded until the process exits.
//
// The signatures are written out rather than taken with decltype: C++ sees overloads of cublasGemmEx and
// cublasGemmStridedBatchedEx (inline ones in cublas_api.h taking the older cudaDataType compute type), and the names
// atelier calls are macros for the _v2 entry points (cublas_v2.h). The CUDA emulation (scripts/cuda-emulate.sh)
// defines cublas_api() itself, over its host GEMM.
#pragma once

#include <string>
#include <vector>

#include <cublas_v2.h>

namespace atelier::cuda {

struct Cublas {
  cublasStatus_t (*create)(cublasHandle_t* handle);
  cublasStatus_t (*destroy)(cublasHandle_t handle);
  cublasStatus_t (*set_stream)(cublasHandle_t handle, cudaStream_t stream);
  cublasStatus_t (*set_workspace)(cublasHandle_t handle, void* workspace, size_t bytes);
  cublasStatus_t (*gemm_ex)(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType a_type, int lda, const void* b,
                            cudaDataType b_type, int ldb, const void* beta, void* c, cudaDataType c_type, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo);
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b,
                                            int m, int n, int k, const void* alpha, const void* a, cudaDataType a_type,
                                            int lda, long long stride_a, const void* b, cudaDataType b_type, int ldb,
                                            long long stride_b, const void* beta, void* c, cudaDataType c_type, int ldc,
                                            long long stride_c, int batch, cublasComputeType_t compute,
                                            cublasGemmAlgo_t algo);
  const char* (*status_string)(cublasStatus_t status);
  const char* (*status_name)(cublasStatus_t status);
  std::string file;  // the library loaded, where the loader found it
};

// The table, loading cuBLAS at the first call (thread-safe) from cublas_library_candidates(); throws
// atelier::Error when it cannot be loaded.
const Cublas& cublas_api();

// The files cublas_api() tries, in order (see the top of this file).
std::vector<std::string> cublas_library_candidates();

// Opens the first of `files` that dlopen opens (a path, or a name the loader looks up) and resolves the table;
// throws atelier::Error naming each file tried with the loader's reason, or the entry point the library lacks.
// cublas_api() calls it once; the tests call it with files of their own.
Cublas load_cublas(const std::vector<std::string>& files);

}  // namespace atelier::cuda

// The CUDA primitives whose kernel family is not written yet: each throws "<op> is not implemented on cuda" (and
// its cuda::<op>_types list in cuda_backend.h is NotImplemented, so supports() is false and launch() refuses it
// before reaching here). A family's definitions move out of this file into its own .cu file when it is written;
// the file goes when it is empty.
#include "backends/cuda/cuda_backend.h"

namespace atelier {

#define ATELIER_CUDA_NOT_YET(op_name, Args) \
  void CudaBackend::op_name(const Args&) { not_implemented(PrimitiveOp::op_name); }

ATELIER_CUDA_NOT_YET(copy, CopyArgs)
ATELIER_CUDA_NOT_YET(cast, CastArgs)
ATELIER_CUDA_NOT_YET(fill, FillArgs)
ATELIER_CUDA_NOT_YET(random, RandomArgs)
ATELIER_CUDA_NOT_YET(unary, UnaryArgs)
ATELIER_CUDA_NOT_YET(binary, BinaryArgs)
ATELIER_CUDA_NOT_YET(compare, CompareArgs)
ATELIER_CUDA_NOT_YET(where, WhereArgs)

#undef ATELIER_CUDA_NOT_YET

}  // namespace atelier

// Built only with the CUDA backend (ATELIER_CUDA): its support table, asked on the CPU (supports() answers from
// type lists and touches no device), covers every primitive of backends/primitives.def in float32 and every
// dtype the CPU supports, so a model moves to the GPU with nothing refused.
#include <doctest/doctest.h>

#include "backends/backend.h"

using namespace atelier;

TEST_CASE("the CUDA backend supports every primitive in float32, and every dtype the CPU supports") {
  Backend* cuda = cuda_backend_or_null();
  REQUIRE(cuda != nullptr);
  const Backend& cpu = backend_for(Device::cpu());
  const PrimitiveOp all[] = {
#define X(name, Args) PrimitiveOp::name,
#include "backends/primitives.def"
#undef X
  };
  for (PrimitiveOp op : all) {
    INFO("primitive " << primitive_name(op));
    CHECK(cuda->supports(op, DType::Float32));
    for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::Bool, DType::UInt8}) {
      INFO("dtype " << dtype_name(dtype));
      CHECK(cuda->supports(op, dtype) == cpu.supports(op, dtype));
    }
  }
}

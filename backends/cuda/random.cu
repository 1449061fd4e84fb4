// Random fills on the GPU from Philox4x32-10, exactly as RandomArgs describes
// (CPU twin: backends/cpu/random.cpp).
//
// One thread per Philox block: block blk (counter offset + blk) makes elements
// 4 blk .. 4 blk + 3 through philox_random_elements (backends/philox.h), the
// very function the CPU calls, so uniforms are bit-identical to the CPU's and
// normals differ only by what CUDA's log/sqrt/cos/sin round differently from
// libm (a few ulp).
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/host_device.h"
#include "backends/philox.h"

namespace atelier {
namespace {

// Block blk of the fill. CPU twin: the body of random_typed in
// backends/cpu/random.cpp.
template <typename T>
struct RandomBlockOp {
  T* dst;
  int64_t numel;
  RandomKind kind;
  uint64_t seed, stream, offset;
  double a, b;
  ATELIER_HOST_DEVICE void operator()(int64_t blk) const {
    const PhiloxBlock r = philox4x32_10(seed, stream, offset + static_cast<uint64_t>(blk));
    T out[4];
    philox_random_elements<T>(r, kind, a, b, out);
    const int64_t first = blk * 4;
    const int64_t count = numel - first < 4 ? numel - first : 4;
    for (int64_t w = 0; w < count; ++w) dst[first + w] = out[w];
  }
};

template <typename T>
void random_typed(const RandomArgs& args) {
  const int64_t blocks = (args.numel + 3) / 4;
  cuda::launch_linear(blocks, RandomBlockOp<T>{static_cast<T*>(args.dst_data), args.numel, args.kind, args.seed,
                                               args.stream, args.offset, args.a, args.b});
}

}  // namespace

void CudaBackend::random(const RandomArgs& args) {
  ATELIER_CHECK(args.numel >= 0, "cuda random: negative numel " << args.numel);
  dispatch(cuda::random_types{}, args.dtype, "cuda random", [&]<class T> { random_typed<T>(args); });
}

}  // namespace atelier

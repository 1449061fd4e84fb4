// Random fills on the CPU from Philox4x32-10 (backends/philox.h), exactly as RandomArgs describes.
//
// Each Philox block (four 32-bit words) makes four output elements, so a call consumes ceil(numel / 4) blocks
// from `offset` and element i depends only on (seed, stream, offset, i): the result is the same for any
// thread count and for any split of one fill into consecutive calls.
// The four elements of a block come from philox_random_elements (backends/philox.h), which the CUDA twin
// (backends/cuda/random.cu) calls too: uniforms are bit-identical across backends, normals within a few ulp.
#include <algorithm>

#include "backends/cpu/kernels.h"
#include "backends/error.h"
#include "backends/philox.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {
namespace {

// Blocks per parallel chunk (4096 elements).
constexpr int64_t kRandomGrain = 1024;

template <typename T>
void random_typed(const RandomArgs& args) {
  T* dst = static_cast<T*>(args.dst_data);
  const int64_t numel = args.numel;
  const int64_t blocks = (numel + 3) / 4;
  const double a = args.a, b = args.b;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const PhiloxBlock r = philox4x32_10(args.seed, args.stream, args.offset + static_cast<uint64_t>(blk));
      const int64_t first = blk * 4;
      const int count = static_cast<int>(std::min<int64_t>(4, numel - first));
      T out[4];
      philox_random_elements<T>(r, args.kind, a, b, out);
      for (int w = 0; w < count; ++w) dst[first + w] = out[w];
    }
  };
  if (blocks >= 2 * kRandomGrain) {
    parallel_for(blocks, kRandomGrain, body);
  } else {
    body(0, blocks);
  }
}

}  // namespace

void random(const RandomArgs& args) {
  ATELIER_CHECK(args.numel >= 0, "cpu random: negative numel " << args.numel);
  dispatch(random_types{}, args.dtype, "cpu random", [&]<class T> { random_typed<T>(args); });
}

}  // namespace atelier::cpu

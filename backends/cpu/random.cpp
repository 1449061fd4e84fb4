// Random fills on the CPU from Philox4x32-10 (backends/philox.h), exactly as RandomArgs describes.
//
// Each Philox block (four 32-bit words) makes four output elements, so a call consumes ceil(numel / 4) blocks
// from `offset` and element i depends only on (seed, stream, offset, i): the result is the same for any
// thread count and for any split of one fill into consecutive calls.
//   uniform  element i = lo + (hi - lo) * philox_unit(word i % 4 of block offset + i / 4), in double, then
//            rounded to the dtype (the CUDA twin does the same, so uniforms are bit-identical).
//   normal   pair p = (elements 2p, 2p + 1) uses words (2q, 2q + 1), q = p % 2, of block offset + p / 2:
//            r = sqrt(-2 log(philox_unit_open0(w[2q]))), theta = 2 pi philox_unit(w[2q + 1]),
//            element 2p = mean + std * r cos(theta), element 2p + 1 = mean + std * r sin(theta).
#include <algorithm>
#include <cmath>
#include <numbers>

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
      if (args.kind == RandomKind::Uniform) {
        for (int w = 0; w < 4; ++w) out[w] = static_cast<T>(a + (b - a) * philox_unit(r.w[w]));
      } else {
        for (int q = 0; q < 2; ++q) {
          const double radius = std::sqrt(-2.0 * std::log(philox_unit_open0(r.w[2 * q])));
          const double theta = 2.0 * std::numbers::pi * philox_unit(r.w[2 * q + 1]);
          out[2 * q] = static_cast<T>(a + b * radius * std::cos(theta));
          out[2 * q + 1] = static_cast<T>(a + b * radius * std::sin(theta));
        }
      }
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

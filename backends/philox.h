// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a counter-based
// generator. The same (key, counter) gives the same four 32-bit words on every backend, so a seed fixes every
// random number atelier makes, whatever the device, thread count or prefetching.
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/args.h"
#include "backends/host_device.h"

namespace atelier {

struct PhiloxBlock {
  uint32_t w[4];
};

// key = the 64-bit seed; counter = (block index: 64 bits, stream: 64 bits).
ATELIER_HOST_DEVICE inline PhiloxBlock philox4x32_10(uint64_t seed, uint64_t stream, uint64_t block) {
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  uint32_t c0 = static_cast<uint32_t>(block), c1 = static_cast<uint32_t>(block >> 32);
  uint32_t c2 = static_cast<uint32_t>(stream), c3 = static_cast<uint32_t>(stream >> 32);
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
    uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {{c0, c1, c2, c3}};
}

// A uniform in [0, 1) made exactly from the top 24 bits: identical on every backend for float and double.
ATELIER_HOST_DEVICE inline double philox_unit(uint32_t word) {
  return static_cast<double>(word >> 8) * (1.0 / 16777216.0);
}

// A uniform in (0, 1], safe for log() in Box-Muller.
ATELIER_HOST_DEVICE inline double philox_unit_open0(uint32_t word) {
  return static_cast<double>((word >> 8) + 1) * (1.0 / 16777216.0);
}

// The four elements one Philox block makes for RandomArgs (the rule of backends/args.h), shared by the CPU and
// CUDA random kernels so both compute the same expressions:
//   uniform  out[w] = lo + (hi - lo) * philox_unit(w[w]), in double with one rounding (fma: a compiler that
//            contracts a * b + c into an FMA on one backend and not on another cannot change the result), then
//            rounded to T: bit-identical on every backend.
//   normal   pair q of the block (words 2q, 2q + 1): r = sqrt(-2 log(philox_unit_open0(w[2q]))),
//            theta = 2 pi philox_unit(w[2q + 1]); z = (r cos(theta), r sin(theta)); out = mean + std z, also with
//            one rounding (fma). libm and CUDA's math library differ by an ulp or two in z; with mean 0 and std 1
//            that is all, while a mean that cancels std z can turn it into more ulps of a small result.
template <typename T>
ATELIER_HOST_DEVICE inline void philox_random_elements(const PhiloxBlock& r, RandomKind kind, double a, double b,
                                                       T (&out)[4]) {
#if defined(__CUDA_ARCH__)
  using ::cos, ::fma, ::log, ::sin, ::sqrt;
#else
  using std::cos, std::fma, std::log, std::sin, std::sqrt;
#endif
  if (kind == RandomKind::Uniform) {
    for (int w = 0; w < 4; ++w) out[w] = static_cast<T>(fma(b - a, philox_unit(r.w[w]), a));
  } else {
    constexpr double kTwoPi = 2.0 * 3.14159265358979323846;
    for (int q = 0; q < 2; ++q) {
      const double radius = sqrt(-2.0 * log(philox_unit_open0(r.w[2 * q])));
      const double theta = kTwoPi * philox_unit(r.w[2 * q + 1]);
      out[2 * q] = static_cast<T>(fma(b, radius * cos(theta), a));
      out[2 * q + 1] = static_cast<T>(fma(b, radius * sin(theta), a));
    }
  }
}

}  // namespace atelier

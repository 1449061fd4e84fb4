// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a counter-based
// generator. The same (key, counter) gives the same four 32-bit words on every backend, so a seed fixes every
// random number atelier makes, whatever the device, thread count or prefetching.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define ATELIER_HOST_DEVICE __host__ __device__
#else
#define ATELIER_HOST_DEVICE
#endif

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

}  // namespace atelier

// Division by a value fixed before a kernel starts (a tensor's size, a plane's pixels), for the CUDA kernels' index
// arithmetic. A GPU has no integer divider: `n / d` with d known only at run time compiles to a routine (a test
// that both fit 32 bits, a reciprocal and two corrections, about 25 instructions; 64-bit operands take a call;
// docs/gpu.md, "Index arithmetic"), paid by every thread of every launch. A Divisor made once on the host replaces
// it by a 64-bit multiply-high, an add and a shift (Granlund and Montgomery, "Division by invariant integers using
// multiplication", 1994), for every non-negative int64 dividend:
//
//   s = ceil(log2 d),  m = floor(2^64 (2^s - d) / d) + 1   (so 2^64 + m = floor(2^(64+s) / d) + 1, and m < 2^64)
//   n / d = floor(n (2^64 + m) / 2^(64+s)) = (umulhi64(n, m) + n) >> s        for 0 <= n < 2^63, 1 <= d < 2^63
//
// Why exact: (2^64 + m) / 2^(64+s) exceeds 1/d by at most 1/2^(64+s), so for n < 2^63 the product
// n (2^64 + m) / 2^(64+s) exceeds n / d by less than 2^63 / 2^(64+s) = 1/2^(s+1) <= 1/(2d), while n / d is at
// least 1/d below the next integer: floor gives n / d. And umulhi64(n, m) < n for n > 0, so the sum fits 64 bits.
// Host and device; tests/test_fast_divide.cpp checks it on the CPU against `/` and `%` (every divisor up to 4,096
// around its multiples, the edges up to 2^63 - 1, random pairs).
#pragma once

#include <cstdint>

#include "backends/error.h"
#include "backends/host_device.h"

namespace atelier {

class Divisor {
 public:
  Divisor() = default;  // divides by 1
  // d >= 1.
  explicit Divisor(int64_t d) : d_(d) {
    ATELIER_CHECK(d >= 1, "Divisor: divisor " << d << " (must be at least 1)");
    while ((uint64_t{1} << shift_) < static_cast<uint64_t>(d)) ++shift_;
    using Wide = unsigned __int128;  // GCC's and Clang's, on the host only
    const Wide one = 1, wide_d = static_cast<Wide>(d);
    magic_ = static_cast<uint64_t>((one << 64) * ((one << shift_) - wide_d) / wide_d + 1);
  }

  // n / d for n >= 0.
  ATELIER_HOST_DEVICE int64_t divide(int64_t n) const {
    const auto u = static_cast<uint64_t>(n);
    return static_cast<int64_t>((multiply_high(u, magic_) + u) >> shift_);
  }
  // q = n / d and n - q * d, the usual pair of an index split.
  ATELIER_HOST_DEVICE int64_t divide(int64_t n, int64_t& remainder) const {
    const int64_t q = divide(n);
    remainder = n - q * d_;
    return q;
  }

 private:
  ATELIER_HOST_DEVICE static uint64_t multiply_high(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(a, b);
#else
    return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
  }

  int64_t d_ = 1;
  uint64_t magic_ = 1;  // d = 1: s = 0, m = 1, umulhi64(n, 1) = 0
  int shift_ = 0;
};

}  // namespace atelier

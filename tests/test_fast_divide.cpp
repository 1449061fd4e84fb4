// backends/fast_divide.h: the multiply-high division the CUDA kernels use for their index arithmetic, checked on the
// CPU (the same code runs on the host) against the plain `/` and `%`: every divisor up to 4,096 with dividends
// around its multiples near 0, 2^31 and 2^63; the edges (1, powers of two and their neighbours up to 2^62, 2^63 - 1);
// and random pairs of every magnitude.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "backends/error.h"
#include "backends/fast_divide.h"

namespace atelier {
namespace {

constexpr int64_t kLargest = INT64_MAX;  // 2^63 - 1

// Counts the dividends where Divisor(d) disagrees with `/` or `%`, so a failure reports a number, not a flood.
int64_t mismatches(int64_t d, const std::vector<int64_t>& dividends) {
  const Divisor divisor(d);
  int64_t bad = 0;
  for (int64_t n : dividends) {
    int64_t r = -1;
    const int64_t q = divisor.divide(n, r);
    if (q != n / d || r != n % d) ++bad;
  }
  return bad;
}

// 0, 1 and the largest dividends, and 64 multiples of d (each with its neighbours) up from 0 and from 2^31 - 1 and
// down from the largest, every step checked so that nothing overflows.
std::vector<int64_t> dividends_near_multiples(int64_t d) {
  std::vector<int64_t> out{0, 1, kLargest, kLargest - 1};
  const auto around = [&](int64_t k) {
    if (k > 0) out.push_back(k - 1);
    out.push_back(k);
    if (k < kLargest) out.push_back(k + 1);
  };
  for (int64_t base : {int64_t{0}, (int64_t{1} << 31) - 1}) {
    int64_t k = base / d * d;
    for (int i = 0; i < 64; ++i, k += d) {
      around(k);
      if (k > kLargest - d) break;
    }
  }
  int64_t k = kLargest / d * d;
  for (int i = 0; i < 64; ++i, k -= d) {
    around(k);
    if (k < d) break;
  }
  return out;
}

TEST_CASE("Divisor: every divisor up to 4,096, dividends around its multiples near 0, 2^31 and 2^63") {
  for (int64_t d = 1; d <= 4096; ++d) {
    INFO("divisor " << d);
    CHECK(mismatches(d, dividends_near_multiples(d)) == 0);
  }
}

TEST_CASE("Divisor: powers of two and their neighbours, the largest divisor, and random pairs") {
  for (int s = 1; s <= 62; ++s) {
    for (int64_t d : {(int64_t{1} << s) - 1, int64_t{1} << s, (int64_t{1} << s) + 1}) {
      INFO("divisor " << d);
      CHECK(mismatches(d, dividends_near_multiples(d)) == 0);
    }
  }
  CHECK(mismatches(kLargest, {0, 1, kLargest - 1, kLargest}) == 0);
  std::mt19937_64 random(12345);
  for (int i = 0; i < 200000; ++i) {
    // Divisors and dividends of every magnitude: a random 63-bit value shifted right by 0 to 62 bits.
    const int64_t d = std::max<int64_t>(1, static_cast<int64_t>(random() >> 1) >> (random() % 63));
    const int64_t n = static_cast<int64_t>(random() >> 1) >> (random() % 63);
    INFO("divisor " << d << ", dividend " << n);
    REQUIRE(mismatches(d, {n}) == 0);
  }
}

TEST_CASE("Divisor: a divisor below 1 is refused, naming it") {
  CHECK_THROWS_WITH_AS(Divisor(0), "Divisor: divisor 0 (must be at least 1)", Error);
  CHECK_THROWS_AS(Divisor(-3), Error);
}

}  // namespace
}  // namespace atelier

// The packed float GEMM of backends/cpu/packed_gemm.h on its own, against a plain triple loop: packed_gemm over
// both pack_a layouts and pack_b, and gemm_add_transposed over pack_b_transposed (B packed one slice at a time,
// as the weight gradient packs one image at a time). Sizes cover whole and edge register blocks (m around the
// 8-row block, n around the 32-column panel, k from 1). The operands are small integers, so every sum is exact in
// float32 whatever the order and the results must match bit for bit; elements of C outside the product (the
// rows' padding up to ldc) must be left as they were.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "backends/cpu/packed_gemm.h"

using namespace atelier::cpu;

namespace {

// Small integers in [-3, 3], a different pattern per seed.
std::vector<float> integers(int64_t count, int64_t seed) {
  std::vector<float> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) v[static_cast<size_t>(i)] = static_cast<float>((i * 7 + seed * 13) % 7 - 3);
  return v;
}

struct Shape {
  int64_t m, n, k;
};

const std::vector<Shape> kShapes = {{1, 1, 1},    {8, 32, 1},    {7, 31, 5},  {9, 33, 17},
                                    {16, 64, 64}, {17, 70, 100}, {40, 96, 3}, {3, 130, 33}};

}  // namespace

TEST_CASE("packed_gemm matches a triple loop for both A layouts and edge blocks") {
  for (const Shape& s : kShapes) {
    for (bool transposed_a : {false, true}) {
      INFO("m " << s.m << ", n " << s.n << ", k " << s.k << (transposed_a ? ", A given transposed" : ""));
      const std::vector<float> a = integers(s.m * s.k, 1), b = integers(s.k * s.n, 2);
      std::vector<float> ap(static_cast<size_t>(packed_a_size(s.m, s.k)), 99.0f);
      std::vector<float> bp(static_cast<size_t>(packed_b_size(s.k, s.n)), 99.0f);
      // A (m, k) row-major, or the transpose of a row-major (k, m) matrix holding the same A.
      std::vector<float> at(a.size());
      for (int64_t r = 0; r < s.m; ++r) {
        for (int64_t kk = 0; kk < s.k; ++kk)
          at[static_cast<size_t>(kk * s.m + r)] = a[static_cast<size_t>(r * s.k + kk)];
      }
      if (transposed_a) {
        pack_a(at.data(), s.m, s.k, 1, s.m, ap.data());
      } else {
        pack_a(a.data(), s.m, s.k, s.k, 1, ap.data());
      }
      pack_b(b.data(), s.k, s.n, s.n, bp.data());
      const int64_t ldc = s.n + 3;
      std::vector<float> c(static_cast<size_t>(s.m * ldc), -7.0f);
      packed_gemm(ap.data(), bp.data(), s.m, s.n, s.k, c.data(), ldc);
      int64_t wrong = 0, touched = 0;
      for (int64_t r = 0; r < s.m; ++r) {
        for (int64_t col = 0; col < ldc; ++col) {
          const float got = c[static_cast<size_t>(r * ldc + col)];
          if (col >= s.n) {
            touched += got != -7.0f;
            continue;
          }
          float want = 0;
          for (int64_t kk = 0; kk < s.k; ++kk)
            want += a[static_cast<size_t>(r * s.k + kk)] * b[static_cast<size_t>(kk * s.n + col)];
          wrong += got != want;
        }
      }
      CHECK(wrong == 0);
      CHECK(touched == 0);
    }
  }
}

TEST_CASE("gemm_add_transposed adds (A B)^T to C, B packed transposed in slices") {
  for (const Shape& s : kShapes) {
    INFO("m " << s.m << ", n " << s.n << ", k " << s.k);
    // A (m, k), rows lda apart; B (k, n) given as x (n, k), rows ldx apart, packed in two slices of its rows.
    const int64_t lda = s.k + 5, ldx = s.k + 2;
    const std::vector<float> a = integers(s.m * lda, 3), x = integers(s.n * ldx, 4);
    std::vector<float> bp(static_cast<size_t>(packed_b_size(s.k, s.n)), 99.0f);
    const int64_t split = s.k / 2;
    pack_b_transposed(x.data(), split, s.n, ldx, s.k, bp.data());
    pack_b_transposed(x.data() + split, s.k - split, s.n, ldx, s.k, bp.data() + split * kPanelColumns);
    // C (n, m), rows ldc apart, starting from values that must be added to.
    const int64_t ldc = s.m + 4;
    const std::vector<float> c0 = integers(s.n * ldc, 5);
    std::vector<float> c = c0;
    gemm_add_transposed(a.data(), lda, bp.data(), s.m, s.n, s.k, c.data(), ldc);
    int64_t wrong = 0, touched = 0;
    for (int64_t col = 0; col < s.n; ++col) {
      for (int64_t r = 0; r < ldc; ++r) {
        const size_t at = static_cast<size_t>(col * ldc + r);
        if (r >= s.m) {
          touched += c[at] != c0[at];
          continue;
        }
        float want = 0;
        for (int64_t kk = 0; kk < s.k; ++kk)
          want += a[static_cast<size_t>(r * lda + kk)] * x[static_cast<size_t>(col * ldx + kk)];
        wrong += c[at] != c0[at] + want;
      }
    }
    CHECK(wrong == 0);
    CHECK(touched == 0);
  }
}

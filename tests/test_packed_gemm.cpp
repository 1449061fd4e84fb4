// The packed float GEMM of backends/cpu/packed_gemm.h on its own, against a plain triple loop: packed_gemm over
// both pack_a layouts and pack_b, gemm_add_transposed over pack_b_transposed (B packed one slice at a time, as the
// weight gradient packs one image at a time), and Winograd's two unpacked forms, gemm_rows_a (A row-major) and
// gemm_columns_a (A transposed, B row-major; assigning and adding), whose operands' padding holds 1e30 so that a
// result that took it in would show it. Sizes cover whole and edge register blocks (m around the
// 8-row block, n around the 32-column panel, k from 1). The operands are small integers, so every sum is exact in
// float32 whatever the order and the results must match bit for bit; elements of C outside the product (the
// rows' padding up to ldc) must be left as they were.
#include <cstddef>
#include <cstdint>
#include <string>
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

// Checks C (m, n), rows ldc apart: each element of the product equal to want(r, col) (bit for bit), the rows'
// padding up to ldc still as in `before`.
template <class Want>
void check_c(const std::vector<float>& c, const std::vector<float>& before, int64_t m, int64_t n, int64_t ldc,
             Want want) {
  int64_t wrong = 0, touched = 0;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t col = 0; col < ldc; ++col) {
      const size_t i = static_cast<size_t>(r * ldc + col);
      if (col >= n) {
        touched += c[i] != before[i];
      } else {
        wrong += c[i] != want(r, col);
      }
    }
  }
  CHECK(wrong == 0);
  CHECK(touched == 0);
}

// The sum of a(kk) * b(kk) over kk in [0, k), in order.
template <class A, class B>
float dot(int64_t k, A a, B b) {
  float sum = 0;
  for (int64_t kk = 0; kk < k; ++kk) sum += a(kk) * b(kk);
  return sum;
}

}  // namespace

TEST_CASE("packed_gemm matches a triple loop for both A layouts and edge blocks") {
  for (const Shape& s : kShapes) {
    for (bool transposed_a : {false, true}) {
      INFO("m " << s.m << ", n " << s.n << ", k " << s.k
                << (transposed_a ? std::string(", A given transposed") : std::string()));
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
      const std::vector<float> before(static_cast<size_t>(s.m * ldc), -7.0f);
      std::vector<float> c = before;
      packed_gemm(ap.data(), bp.data(), s.m, s.n, s.k, c.data(), ldc);
      check_c(c, before, s.m, s.n, ldc, [&](int64_t r, int64_t col) {
        return dot(
            s.k, [&](int64_t kk) { return a[static_cast<size_t>(r * s.k + kk)]; },
            [&](int64_t kk) { return b[static_cast<size_t>(kk * s.n + col)]; });
      });
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

TEST_CASE("gemm_rows_a: C = A B with A row-major read in place, B packed") {
  for (const Shape& s : kShapes) {
    INFO("m " << s.m << ", n " << s.n << ", k " << s.k);
    // A (m, k), rows lda apart; the floats between its rows must not be read into the result.
    const int64_t lda = s.k + 3;
    std::vector<float> a = integers(s.m * lda, 6);
    for (int64_t r = 0; r < s.m; ++r) {
      for (int64_t kk = s.k; kk < lda; ++kk) a[static_cast<size_t>(r * lda + kk)] = 1e30f;
    }
    const std::vector<float> b = integers(s.k * s.n, 7);
    std::vector<float> bp(static_cast<size_t>(packed_b_size(s.k, s.n)), 99.0f);
    pack_b(b.data(), s.k, s.n, s.n, bp.data());
    const int64_t ldc = s.n + 3;
    const std::vector<float> before(static_cast<size_t>(s.m * ldc), -7.0f);
    std::vector<float> c = before;
    gemm_rows_a(a.data(), lda, bp.data(), s.m, s.n, s.k, c.data(), ldc);
    check_c(c, before, s.m, s.n, ldc, [&](int64_t r, int64_t col) {
      return dot(
          s.k, [&](int64_t kk) { return a[static_cast<size_t>(r * lda + kk)]; },
          [&](int64_t kk) { return b[static_cast<size_t>(kk * s.n + col)]; });
    });
  }
}

TEST_CASE("gemm_columns_a: C = A B and C += A B with A given transposed and B row-major, neither packed") {
  for (const Shape& s : kShapes) {
    for (bool add : {false, true}) {
      INFO("m " << s.m << ", n " << s.n << ", k " << s.k << (add ? std::string(", adding") : std::string()));
      // A (m, k) as at (k, m), rows lda apart; B (k, n), rows ldb apart: n rounded up to a whole panel, as the
      // function requires, its columns past n holding values whose products must be dropped.
      const int64_t lda = s.m + 2, ldb = (s.n + kPanelColumns - 1) / kPanelColumns * kPanelColumns;
      std::vector<float> at = integers(s.k * lda, 8), b = integers(s.k * ldb, 9);
      for (int64_t kk = 0; kk < s.k; ++kk) {
        for (int64_t r = s.m; r < lda; ++r) at[static_cast<size_t>(kk * lda + r)] = 1e30f;
        for (int64_t col = s.n; col < ldb; ++col) b[static_cast<size_t>(kk * ldb + col)] = 1e30f;
      }
      const int64_t ldc = s.n + 4;
      const std::vector<float> before = integers(s.m * ldc, 10);
      std::vector<float> c = before;
      gemm_columns_a(at.data(), lda, b.data(), ldb, s.m, s.n, s.k, c.data(), ldc, add);
      check_c(c, before, s.m, s.n, ldc, [&](int64_t r, int64_t col) {
        const float sum = dot(
            s.k, [&](int64_t kk) { return at[static_cast<size_t>(kk * lda + r)]; },
            [&](int64_t kk) { return b[static_cast<size_t>(kk * ldb + col)]; });
        return add ? before[static_cast<size_t>(r * ldc + col)] + sum : sum;
      });
    }
  }
}

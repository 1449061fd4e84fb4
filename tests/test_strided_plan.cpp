// backends/strided.h: make_plan's merged dimensions and plan_offsets, which every strided CUDA kernel calls once per
// element (the CPU walks the same plan in runs). Checked here on the CPU, against offsets computed element by element
// from the operands' own sizes and strides, so a slip in the index arithmetic fails every build's suite, not only
// the CUDA emulation's.
#include <cstdint>
#include <initializer_list>
#include <vector>

#include <doctest/doctest.h>

#include "backends/strided.h"

namespace atelier {
namespace {

Layout layout(std::initializer_list<int64_t> sizes, std::initializer_list<int64_t> strides) {
  Layout l;
  l.ndim = static_cast<int>(sizes.size());
  int d = 0;
  for (int64_t s : sizes) l.sizes[d++] = s;
  d = 0;
  for (int64_t s : strides) l.strides[d++] = s;
  return l;
}

// The offset of row-major element `linear` of `shape` in an operand of strides `strides`, one dimension at a time.
int64_t reference_offset(const Layout& shape, const Layout& strides, int64_t linear) {
  int64_t offset = 0;
  for (int d = shape.ndim - 1; d >= 0; --d) {
    offset += linear % shape.sizes[d] * strides.strides[d];
    linear /= shape.sizes[d];
  }
  return offset;
}

// Element i's offsets in both operands (a's shape and strides, b's strides), from the plan and from the reference.
void check_element(const StridedPlan<2>& plan, const Layout& a, const Layout& b, int64_t i) {
  int64_t offsets[2];
  plan_offsets(plan, i, offsets);
  INFO("element " << i);
  CHECK(offsets[0] == reference_offset(a, a, i));
  CHECK(offsets[1] == reference_offset(a, b, i));
}

// Every element's offsets.
void check_plan(const Layout& a, const Layout& b) {
  const Layout* layouts[2] = {&a, &b};
  const StridedPlan<2> plan = make_plan<2>(a, layouts);
  REQUIRE(plan.numel == a.numel());
  for (int64_t i = 0; i < plan.numel; ++i) check_element(plan, a, b, i);
}

TEST_CASE("strided plan: contiguous operands merge into one dimension, so a GPU thread divides not at all") {
  const Layout a = layout({4, 3, 5}, {15, 5, 1});
  const Layout* layouts[2] = {&a, &a};
  const StridedPlan<2> plan = make_plan<2>(a, layouts);
  CHECK(plan.ndim == 1);
  CHECK(plan.sizes[0] == 60);
  check_plan(a, a);
}

TEST_CASE("strided plan: every element's offsets match the operands' strides") {
  SUBCASE("transposed") { check_plan(layout({4, 6}, {6, 1}), layout({4, 6}, {1, 4})); }
  SUBCASE("sliced rows and columns") { check_plan(layout({3, 4, 5}, {20, 5, 1}), layout({3, 4, 5}, {70, 14, 2})); }
  SUBCASE("broadcast (stride 0) in the middle and outside") {
    check_plan(layout({2, 3, 4}, {12, 4, 1}), layout({2, 3, 4}, {0, 1, 0}));
  }
  SUBCASE("size-1 dimensions are dropped") {
    check_plan(layout({1, 5, 1, 3}, {15, 3, 3, 1}), layout({1, 5, 1, 3}, {7, 1, 9, 5}));
  }
  SUBCASE("a permutation of four dimensions") {
    check_plan(layout({2, 3, 4, 5}, {60, 20, 5, 1}), layout({2, 3, 4, 5}, {1, 2, 6, 24}));
  }
  SUBCASE("a scalar") { check_plan(layout({}, {}), layout({}, {})); }
  SUBCASE("sizes that are not powers of two, each dimension its own") {
    check_plan(layout({3, 7, 5, 6}, {210, 30, 6, 1}), layout({3, 7, 5, 6}, {1, 3, 0, 21}));
  }
}

TEST_CASE("strided plan: an index space past 2^32, sampled, as a GPU thread's 64-bit index splits it") {
  // Strides only: no tensor of these sizes exists. Two operands that merge nothing (the second is transposed).
  const Layout a = layout({5, 1000003, 1001}, {1001 * 1000003LL, 1001, 1});
  const Layout b = layout({5, 1000003, 1001}, {1, 5, 5 * 1000003LL});
  const Layout* layouts[2] = {&a, &b};
  const StridedPlan<2> plan = make_plan<2>(a, layouts);
  REQUIRE(plan.ndim == 3);
  REQUIRE(plan.numel > (int64_t{1} << 32));
  for (const int64_t i : {int64_t{0}, int64_t{1000}, int64_t{1} << 31, (int64_t{1} << 32) + 12345, plan.numel / 2,
                          plan.numel - 1002, plan.numel - 1}) {
    check_element(plan, a, b, i);
  }
}

TEST_CASE("strided plan: an empty tensor makes a plan of no elements (a size of 0 gets no divisor)") {
  const Layout a = layout({3, 0, 4}, {0, 4, 1});
  const Layout* layouts[1] = {&a};
  const StridedPlan<1> plan = make_plan<1>(a, layouts);
  CHECK(plan.numel == 0);
}

}  // namespace
}  // namespace atelier

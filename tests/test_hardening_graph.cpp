// Hardening of the autograd graph: destroying a very long graph (a long unroll, a long chain of small ops) must
// not recurse node -> edge -> node, with or without a backward pass first. Runs in every build type, so a
// Release build (small frames, no sanitizer) and an ASan build (large frames) both check the same thing: the cases
// are not labelled `long` (their names once said "(long)", which kept them out of the sanitizer passes).
#include <doctest/doctest.h>

#include "atelier.h"

using namespace atelier;

namespace {

// 300,000 ops: deep enough that a recursive teardown (a few hundred bytes of stack per level) overflows an
// 8 MiB stack even in Release, cheap enough (neg is one element, no saved tensors) to run in about a second.
constexpr int kChainLength = 300000;

Tensor long_chain(const Tensor& x) {
  Tensor y = x;
  for (int i = 0; i < kChainLength; ++i) y = neg(y);
  return y;
}

}  // namespace

TEST_CASE("a 300000-op graph is torn down without recursion, without backward" * doctest::test_suite("heavy")) {
  const int64_t nodes_before = live_nodes();
  {
    Tensor x = ones({1}).requires_grad_();
    Tensor y = long_chain(x);
    CHECK(live_nodes() == nodes_before + kChainLength);
    // y goes out of scope here: the whole chain dies from its last node.
  }
  CHECK(live_nodes() == nodes_before);
}

TEST_CASE("a 300000-op graph is torn down without recursion, after backward" * doctest::test_suite("heavy")) {
  const int64_t nodes_before = live_nodes();
  Tensor x = full({1}, 2.0).requires_grad_();
  {
    Tensor y = long_chain(x);
    y.sum().backward();
  }
  CHECK(live_nodes() == nodes_before);
  // An even number of negations: the gradient is +1.
  CHECK(x.grad().item<float>() == 1.0f);
}

TEST_CASE("a long graph shared by two roots is torn down once, when its last owner goes" *
          doctest::test_suite("heavy")) {
  const int64_t nodes_before = live_nodes();
  Tensor x = ones({1}).requires_grad_();
  Tensor a = long_chain(x);
  Tensor b = a * 2.0;
  Tensor c = a * 3.0;
  a = Tensor();
  b = Tensor();
  // c still holds the chain through its node's edge.
  CHECK(live_nodes() == nodes_before + kChainLength + 1);
  c.sum().backward();
  CHECK(x.grad().item<float>() == 3.0f);
  c = Tensor();
  CHECK(live_nodes() == nodes_before);
}

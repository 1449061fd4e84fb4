// End to end on the core floors: a 2-layer MLP trained with hand-written SGD (nn/ comes later), and the leak
// check: a steady training step leaves the live TensorImpl, Node and Storage-byte counters unchanged, and
// destroying the model and its data returns them to where they started.
#include <cmath>

#include <doctest/doctest.h>

#include "atelier.h"
#include "tests/test_util.h"

using namespace atelier;

namespace {

// XOR-like two-class problem in the square [-1, 1]^2: class 1 where x0 * x1 > 0. Not linearly separable, so
// the hidden layer has to learn.
struct Problem {
  Tensor x;       // (n, 2) float32
  Tensor labels;  // (n) int64
};

Problem make_problem(int64_t n, uint64_t seed) {
  Tensor x = uniform({n, 2}, -1, 1, RandomKey{seed, 0, 0});
  std::vector<float> xs = x.to_vector<float>();
  std::vector<int64_t> ys(n);
  for (int64_t i = 0; i < n; ++i) ys[i] = xs[2 * i] * xs[2 * i + 1] > 0 ? 1 : 0;
  return {x, from_vector(ys, {n})};
}

struct Mlp {
  Tensor w1, b1, w2, b2;  // PyTorch layouts: weight (out, in)

  Mlp(int64_t hidden, uint64_t seed) {
    // U(+-1/sqrt(fan_in)), PyTorch's default for Linear.
    w1 = uniform({hidden, 2}, -0.7071, 0.7071, RandomKey{seed, 1, 0}).requires_grad_();
    b1 = uniform({hidden}, -0.7071, 0.7071, RandomKey{seed, 2, 0}).requires_grad_();
    double bound = 1.0 / std::sqrt(static_cast<double>(hidden));
    w2 = uniform({2, hidden}, -bound, bound, RandomKey{seed, 3, 0}).requires_grad_();
    b2 = uniform({2}, -bound, bound, RandomKey{seed, 4, 0}).requires_grad_();
  }
  Tensor forward(const Tensor& x) const { return linear(tanh(linear(x, w1, b1)), w2, b2); }
  std::vector<Tensor> parameters() const { return {w1, b1, w2, b2}; }
};

double sgd_step(const Mlp& model, const Problem& data, double lr) {
  Tensor loss = cross_entropy(model.forward(data.x), data.labels);
  loss.backward();
  NoGradGuard no_grad;
  for (const Tensor& p : model.parameters()) {
    Tensor g = p.grad();
    Tensor(p).sub_(g * lr);
    g.zero_();
  }
  return loss.item();
}

double accuracy(const Mlp& model, const Problem& data) {
  NoGradGuard no_grad;
  return testing::argmax_accuracy(model.forward(data.x), data.labels);
}

struct Counters {
  int64_t impls, nodes;
  size_t storage_bytes;
  bool operator==(const Counters& o) const {
    return impls == o.impls && nodes == o.nodes && storage_bytes == o.storage_bytes;
  }
};

Counters counters() { return {live_tensor_impls(), live_nodes(), live_storage_bytes()}; }

std::ostream& operator<<(std::ostream& os, const Counters& c) {
  return os << "{impls " << c.impls << ", nodes " << c.nodes << ", storage bytes " << c.storage_bytes << "}";
}

}  // namespace

TEST_CASE("a 2-layer MLP learns XOR-like data with plain SGD" * doctest::test_suite("heavy")) {
  // Seed 7, 64 hidden units, full-batch SGD with lr 0.5 for 400 steps on 512 points.
  Problem train = make_problem(512, 7);
  Problem test = make_problem(512, 8);
  Mlp model(64, 7);
  double first = sgd_step(model, train, 0.5);
  double last = first;
  for (int step = 1; step < 400; ++step) last = sgd_step(model, train, 0.5);
  INFO("loss " << first << " -> " << last);
  CHECK(first > 0.6);  // about log 2 at the start
  CHECK(last < 0.25);
  CHECK(accuracy(model, test) > 0.9);
}

TEST_CASE("a training step leaks nothing") {
  Counters before_model = counters();
  {
    Problem data = make_problem(64, 3);
    Mlp model(16, 3);
    sgd_step(model, data, 0.1);  // warm-up: creates the .grad tensors
    Counters after_one = counters();
    for (int step = 0; step < 100; ++step) sgd_step(model, data, 0.1);
    CHECK(counters() == after_one);
    CHECK(live_nodes() == 0);  // the graph of each step died with its loss
  }
  CHECK(counters() == before_model);
}

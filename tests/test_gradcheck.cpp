// The op table through the float64 gradient check: every differentiable op has a row, every row passes, the
// checker catches a wrong gradient, and a node computes only the gradients its inputs need.
#include <algorithm>
#include <set>

#include <doctest/doctest.h>

#include "atelier.h"
#include "autograd/op_table.h"
#include "autograd/record.h"
#include "tests/test_util.h"

using namespace atelier;

TEST_CASE("every op in autograd/differentiable_ops.def has a gradcheck row") {
  std::set<std::string> covered;
  for (const OpCase& c : op_table()) covered.insert(c.op);
  for (const std::string& op : differentiable_op_names()) {
    INFO("op without a row in autograd/op_table.cpp: " << op);
    CHECK(covered.count(op) == 1);
  }
  // And no row names an op missing from differentiable_ops.def.
  const auto& names = differentiable_op_names();
  for (const std::string& op : covered) {
    INFO("row for an op missing from autograd/differentiable_ops.def: " << op);
    CHECK(std::find(names.begin(), names.end(), op) != names.end());
  }
}

TEST_CASE("every op table row passes gradcheck") {
  for (const OpCase& c : op_table()) {
    INFO("row " << c.name);
    GradcheckResult r = gradcheck(c.fn, c.make_inputs(), c.options);
    INFO(r.message);
    CHECK(r.passed);
  }
}

TEST_CASE("the conv2d, conv2d_elu and upsample_conv2d_elu rows pass gradcheck under every CPU conv algorithm" *
          doctest::test_suite("heavy")) {
  // Forced, Winograd computes every 3x3 stride-1 row (the auto rule would leave these small shapes on im2col), and
  // direct every 3x3 stride-1 padding-1 row; the other rows stay on im2col whatever the setting.
  int rows = 0;
  for (ConvAlgo algo : {ConvAlgo::Im2col, ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
    testing::ConvAlgoScope scope(algo);
    for (const OpCase& c : op_table()) {
      if (c.op != "conv2d" && c.op != "conv2d_elu" && c.op != "upsample_conv2d_elu") continue;
      INFO("row " << c.name << ", " << std::string(conv_algo_name(algo)));
      GradcheckResult r = gradcheck(c.fn, c.make_inputs(), c.options);
      INFO(r.message);
      CHECK(r.passed);
      ++rows;
    }
  }
  CHECK(rows >= 4 * 12);
}

TEST_CASE("gradcheck catches a wrong gradient") {
  // y = 2x recorded with the backward of y = 3x.
  auto wrong = [](const std::vector<Tensor>& in) {
    Tensor out = raw::binary(BinaryOp::Mul, in[0], 2.0);
    if (!should_record({in[0]})) return out;
    return record("wrong_double", out, {in[0]}, [](const auto& g, const auto&) {
      return std::vector<Tensor>{raw::binary(BinaryOp::Mul, g[0], 3.0)};
    });
  };
  Tensor x = uniform({4}, -1, 1, RandomKey{1, 2, 3}, DType::Float64).requires_grad_();
  GradcheckResult r = gradcheck(wrong, {x});
  CHECK_FALSE(r.passed);
  CHECK(r.max_abs_err > 0.4);
  CHECK(r.message.find("analytic") != std::string::npos);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return in[0] * 2.0; }, {x}).passed);
}

TEST_CASE("a row with one input requiring grad produces no gradient for the others") {
  int rows_checked = 0;
  for (const OpCase& c : op_table()) {
    std::vector<Tensor> full = c.make_inputs();
    std::vector<size_t> grad_inputs;
    for (size_t i = 0; i < full.size(); ++i) {
      if (full[i].requires_grad()) grad_inputs.push_back(i);
    }
    if (grad_inputs.size() < 2) continue;
    // Reference: every input requires grad.
    c.fn(full).sum().backward();
    for (size_t keep : grad_inputs) {
      INFO("row " << c.name << ", only input " << keep << " requires grad");
      std::vector<Tensor> partial = c.make_inputs();
      for (size_t i : grad_inputs) partial[i].requires_grad_(i == keep);
      int64_t wasted_before = unneeded_gradients_computed();
      c.fn(partial).sum().backward();
      CHECK(unneeded_gradients_computed() == wasted_before);
      for (size_t i : grad_inputs) {
        if (i == keep) {
          REQUIRE(partial[i].grad().defined());
          std::vector<double> got = partial[i].grad().to_vector<double>();
          std::vector<double> want = full[i].grad().to_vector<double>();
          REQUIRE(got.size() == want.size());
          for (size_t j = 0; j < got.size(); ++j) CHECK(got[j] == doctest::Approx(want[j]).epsilon(1e-12));
        } else {
          CHECK_FALSE(partial[i].grad().defined());
        }
      }
    }
    ++rows_checked;
  }
  CHECK(rows_checked >= 10);
}

TEST_CASE("gradcheck rejects inputs it cannot perturb") {
  Tensor f32 = ones({2}).requires_grad_();
  CHECK_THROWS_WITH_AS(gradcheck([](const std::vector<Tensor>& in) { return in[0] * 2.0; }, {f32}),
                       doctest::Contains("float64"), Error);
}

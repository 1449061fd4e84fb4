// Differentiable reductions. Their backward broadcasts the output gradient back over the reduced dims. amin, var and
// logsumexp are composites: their gradients come from the ops they are made of.
#include <algorithm>
#include <limits>

#include "autograd/functions.h"
#include "autograd/record.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {

// The output gradient reshaped with the reduced dims kept as size 1, then expanded to the input shape.
Tensor expand_back(const Tensor& grad, const Shape& input_shape, const std::vector<int>& rdims) {
  Shape kept = input_shape;
  for (int d : rdims) kept[d] = 1;
  return raw::expand(raw::reshape(grad, kept), input_shape);
}

int64_t reduced_count(const Shape& shape, const std::vector<int>& rdims) {
  int64_t n = 1;
  for (int d : rdims) n *= shape[d];
  return n;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = raw::reduce(ReduceOp::Sum, x, dims, keepdim);
  if (!should_record({x})) return out;
  std::vector<int> rdims = normalize_dims(dims, x.dim(), "sum");
  return record("sum", out, {x}, [xs = x.shape(), rdims](const auto& g, const auto&) {
    return std::vector<Tensor>{expand_back(g[0], xs, rdims)};
  });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = raw::reduce(ReduceOp::Mean, x, dims, keepdim);
  if (!should_record({x})) return out;
  std::vector<int> rdims = normalize_dims(dims, x.dim(), "mean");
  double scale = 1.0 / static_cast<double>(reduced_count(x.shape(), rdims));
  return record("mean", out, {x}, [xs = x.shape(), rdims, scale](const auto& g, const auto&) {
    return std::vector<Tensor>{expand_back(raw::binary(BinaryOp::Mul, g[0], scale), xs, rdims)};
  });
}

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = raw::reduce(ReduceOp::Max, x, dims, keepdim);
  if (!should_record({x})) return out;
  std::vector<int> rdims = normalize_dims(dims, x.dim(), "amax");
  // The gradient goes to the elements equal to the maximum, split evenly between ties: each output's share
  // g / count is made at the output's size and only then spread by a select (where), the same values as the
  // composition it replaced (compare, cast, sum, a divide of the expanded gradient, a multiply by the mask), with
  // two full-size passes fewer (docs/benchmarks.md, "amax").
  return record("amax", out, {x}, [sx = SavedTensor(x), so = SavedTensor(out), rdims](const auto& g, const auto&) {
    Tensor x_ = sx.unpack();
    Shape kept = x_.shape();
    for (int d : rdims) kept[d] = 1;
    const Tensor ties = raw::compare(CompareOp::Eq, x_, raw::expand(raw::reshape(so.unpack(), kept), x_.shape()));
    std::vector<int64_t> dims64(rdims.begin(), rdims.end());
    const Tensor count = raw::reduce(ReduceOp::Sum, raw::cast(ties, x_.dtype()), dims64, /*keepdim=*/true);
    const Tensor share = raw::binary(BinaryOp::Div, raw::reshape(g[0], kept), count);
    // The others get share * 0, as the multiply by the mask gave them: 0 (of share's sign), or NaN where the share
    // is not finite (a NaN maximum ties with nothing: its count is 0).
    const Tensor other = raw::binary(BinaryOp::Mul, share, 0.0);
    return std::vector<Tensor>{raw::where(ties, raw::expand(share, x_.shape()), raw::expand(other, x_.shape()))};
  });
}

Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return -amax(-x, dims, keepdim); }

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  const std::vector<int> rdims = normalize_dims(dims, x.dim(), "var");
  const int64_t n = reduced_count(x.shape(), rdims);
  ATELIER_CHECK(correction >= 0 && n - correction > 0, "var: " << n << " element(s) per output of " << x.shape()
                                                               << " leave no degrees of freedom with correction "
                                                               << correction);
  const Tensor centred = x - mean(x, dims, /*keepdim=*/true);
  return sum(centred * centred, dims, keepdim) / static_cast<double>(n - correction);
}

Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  // log sum exp(x - m) + m with m the maximum (detached: the result does not depend on it, and its gradient would be
  // 0 up to rounding), so no exp overflows. Where the maximum is infinite (a row of -inf, or one holding +inf), m is
  // 0 instead, which gives +inf as a direct sum would; a row whose maximum is -inf is set to -inf afterwards (Eigen's
  // exp of -inf is not 0 everywhere: with AVX2, float64 gives 2.2e-308, and such a row came out as -709.1).
  const Tensor m_raw = raw::reduce(ReduceOp::Max, x.detach(), dims, /*keepdim=*/true);
  const Tensor m =
      raw::where(raw::compare(CompareOp::Eq, raw::unary(UnaryOp::Abs, m_raw), std::numeric_limits<double>::infinity()),
                 0.0, m_raw);
  Tensor out = log(sum(exp(x - m), dims, /*keepdim=*/true)) + m;
  const Tensor empty_rows = raw::compare(CompareOp::Eq, m_raw, -std::numeric_limits<double>::infinity());
  out = where(empty_rows, full(out.shape(), -std::numeric_limits<double>::infinity(), out.dtype(), out.device()), out);
  if (keepdim) return out;
  Shape reduced;  // x's shape without the reduced dims
  const std::vector<int> rdims = normalize_dims(dims, x.dim(), "logsumexp");
  for (int d = 0; d < x.dim(); ++d) {
    if (std::find(rdims.begin(), rdims.end(), d) == rdims.end()) reduced.push_back(x.shape()[d]);
  }
  return reshape(out, reduced);
}

}  // namespace atelier

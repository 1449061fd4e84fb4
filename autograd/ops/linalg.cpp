// Matrix products. matmul's backward uses transposed views, which the GEMM takes as flags: no copies; and it
// makes a column-major operand's gradient column-major, so that linear's weight gets a contiguous one.
#include "autograd/functions.h"
#include "autograd/record.h"
#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {

// Whether t is a matrix stored column by column (the transpose of a contiguous one, as linear's W^T is). Its
// gradient is then made in that layout: the transpose view it goes back through gives its source a contiguous
// gradient, which the engine keeps as it is, where a row-major one would come back as a transposed view that the
// engine copies into a contiguous .grad (a strided pass over the whole weight). PyTorch's mm does the same.
bool column_major(const Tensor& t) {
  return t.dim() == 2 && t.size(0) > 1 && t.size(1) > 1 && t.stride(0) == 1 && t.stride(1) == t.size(0);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor out = raw::matmul(a, b);
  if (!should_record({a, b})) return out;
  // C = A B:  dA = dC B^T,  dB = A^T dC  (batch dims broadcast, so sum back to each shape). For a column-major
  // operand of a plain matrix product, its transpose's gradient is computed and transposed back (a view):
  // dA = (B dC^T)^T, dB = (dC^T A)^T, the same sums of products in the operand's own layout.
  SavedTensor sa = b.requires_grad() ? SavedTensor(a) : SavedTensor();
  SavedTensor sb = a.requires_grad() ? SavedTensor(b) : SavedTensor();
  const bool plain = a.dim() == 2 && b.dim() == 2;
  const bool a_by_columns = plain && column_major(a), b_by_columns = plain && column_major(b);
  return record("matmul", out, {a, b},
                [sa, sb, as = a.shape(), bs = b.shape(), a_by_columns, b_by_columns](const auto& g, const auto& needs) {
                  Tensor ga, gb;
                  if (needs[0]) {
                    ga = a_by_columns ? raw::transpose(raw::matmul(sb.unpack(), raw::transpose(g[0], 0, 1)), 0, 1)
                                      : raw::sum_to(raw::matmul(g[0], raw::transpose(sb.unpack(), -1, -2)), as);
                  }
                  if (needs[1]) {
                    gb = b_by_columns ? raw::transpose(raw::matmul(raw::transpose(g[0], 0, 1), sa.unpack()), 0, 1)
                                      : raw::sum_to(raw::matmul(raw::transpose(sa.unpack(), -1, -2), g[0]), bs);
                  }
                  return std::vector<Tensor>{ga, gb};
                });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  ATELIER_CHECK(weight.dim() == 2, "linear: weight must be (out_features, in_features), got " << weight.shape());
  ATELIER_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1),
                "linear: input " << x.shape() << " does not match weight " << weight.shape() << " (expected last dim "
                                 << weight.size(1) << ")");
  ATELIER_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)),
                "linear: bias of shape " << bias.shape() << " for weight " << weight.shape());
  // y = x W^T + b, composed: the bias broadcast in add is summed back by its backward.
  Tensor x2 = x.dim() == 1 ? unsqueeze(x, 0) : x;
  Tensor y = matmul(x2, transpose(weight, 0, 1));
  if (bias.defined()) y = add(y, bias);
  return x.dim() == 1 ? squeeze(y, 0) : y;
}

}  // namespace atelier

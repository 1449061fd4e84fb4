// Matrix products. matmul's backward uses transposed views, which the GEMM takes as flags: no copies.
#include "autograd/functions.h"
#include "autograd/record.h"
#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier {

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor out = raw::matmul(a, b);
  if (!should_record({a, b})) return out;
  // C = A B:  dA = dC B^T,  dB = A^T dC  (batch dims broadcast, so sum back to each shape).
  SavedTensor sa = b.requires_grad() ? SavedTensor(a) : SavedTensor();
  SavedTensor sb = a.requires_grad() ? SavedTensor(b) : SavedTensor();
  return record("matmul", out, {a, b}, [sa, sb, as = a.shape(), bs = b.shape()](const auto& g, const auto& needs) {
    Tensor ga, gb;
    if (needs[0]) ga = raw::sum_to(raw::matmul(g[0], raw::transpose(sb.unpack(), -1, -2)), as);
    if (needs[1]) gb = raw::sum_to(raw::matmul(raw::transpose(sa.unpack(), -1, -2), g[0]), bs);
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

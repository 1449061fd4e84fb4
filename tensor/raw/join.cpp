// Concatenation: every input copied into its slice of one output (no primitive of its own).
#include "tensor/creation.h"
#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  ATELIER_CHECK(!tensors.empty(), "cat: expected at least one tensor");
  const Tensor& first = tensors[0];
  ATELIER_CHECK(first.dim() >= 1, "cat: cannot concatenate 0-d tensors (tensor 0 has shape " << first.shape() << ")");
  const int d = normalize_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_same_device(first, t, "cat");
    check_same_dtype(first, t, "cat");
    bool match = t.dim() == first.dim();
    for (int k = 0; match && k < first.dim(); ++k) match = k == d || t.shape()[k] == first.shape()[k];
    ATELIER_CHECK(match, "cat: tensor " << i << " has shape " << t.shape() << " but tensor 0 has shape "
                                        << first.shape() << "; they must match except in dimension " << d);
    ATELIER_CHECK(add_fits(out_shape[d], t.shape()[d], out_shape[d]),
                  "cat: the sizes along dimension " << d << " add up to more than 2^63 - 1 (tensor " << i
                                                    << " has shape " << t.shape() << ")");
  }
  Tensor out = raw::empty(out_shape, first.dtype(), first.device());
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    const int64_t size = t.shape()[d];
    if (size > 0) copy_(slice(out, d, offset, offset + size, 1), t);
    offset += size;
  }
  return out;
}

}  // namespace atelier::raw

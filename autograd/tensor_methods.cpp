// The differentiable methods of Tensor, declared in tensor/tensor.h for a fluent API and defined here, on the
// autograd floor, as calls to the free functions of autograd/functions.h.
#include "autograd/functions.h"
#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier {

Tensor Tensor::contiguous() const { return atelier::contiguous(*this); }
Tensor Tensor::clone() const { return atelier::clone(*this); }
Tensor Tensor::to(DType dtype) const { return atelier::to_dtype(*this, dtype); }
Tensor Tensor::to(Device device) const { return atelier::to_device(*this, device); }

Tensor Tensor::reshape(const Shape& shape) const { return atelier::reshape(*this, shape); }

Tensor Tensor::view(const Shape& shape) const {
  Shape target = raw::infer_shape(shape, numel(), "view");
  ATELIER_CHECK(raw::view_or_undefined(*this, target).defined(),
                "view: a tensor of shape " << this->shape() << " and strides " << strides() << " cannot be viewed as "
                                           << shape << " without a copy; use reshape()");
  return atelier::reshape(*this, target);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  int s = normalize_dim(start_dim, dim(), "flatten"), e = normalize_dim(end_dim, dim(), "flatten");
  ATELIER_CHECK(s <= e, "flatten: start_dim " << start_dim << " comes after end_dim " << end_dim);
  Shape out(shape().begin(), shape().begin() + s);
  int64_t merged = 1;
  for (int d = s; d <= e; ++d) merged *= shape()[d];
  out.push_back(merged);
  out.insert(out.end(), shape().begin() + e + 1, shape().end());
  return reshape(out);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const { return atelier::permute(*this, dims); }
Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const { return atelier::transpose(*this, dim0, dim1); }

Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  return atelier::slice(*this, dim, start, end, step);
}

Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const {
  int d = normalize_dim(dim, this->dim(), "narrow");
  // length <= size - start, not start + length <= size: the sum overflows for a huge length.
  ATELIER_CHECK(start >= 0 && length >= 0 && start <= shape()[d] && length <= shape()[d] - start,
                "narrow: start " << start << " and length " << length << " are outside dimension " << d << " of shape "
                                 << shape());
  return atelier::slice(*this, d, start, start + length, 1);
}

Tensor Tensor::expand(const Shape& shape) const { return atelier::expand(*this, shape); }
Tensor Tensor::squeeze(int64_t dim) const { return atelier::squeeze(*this, dim); }

Tensor Tensor::squeeze() const {
  Shape out;
  for (int64_t s : shape()) {
    if (s != 1) out.push_back(s);
  }
  return atelier::reshape(*this, out);
}

Tensor Tensor::unsqueeze(int64_t dim) const { return atelier::unsqueeze(*this, dim); }

Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const { return atelier::sum(*this, dims, keepdim); }
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const {
  return atelier::mean(*this, dims, keepdim);
}
Tensor Tensor::amax(const std::vector<int64_t>& dims, bool keepdim) const {
  return atelier::amax(*this, dims, keepdim);
}
Tensor Tensor::amin(const std::vector<int64_t>& dims, bool keepdim) const {
  return atelier::amin(*this, dims, keepdim);
}
Tensor Tensor::var(const std::vector<int64_t>& dims, int64_t correction, bool keepdim) const {
  return atelier::var(*this, dims, correction, keepdim);
}
Tensor Tensor::logsumexp(const std::vector<int64_t>& dims, bool keepdim) const {
  return atelier::logsumexp(*this, dims, keepdim);
}

}  // namespace atelier

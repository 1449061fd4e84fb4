// Tensor: a cheap handle (a shared_ptr to TensorImpl) to an n-d array on a device. Copying a Tensor copies the
// handle, never the data. Views (reshape, permute, slice, expand ...) share the storage.
//
// Methods fall in four groups:
//  - metadata and raw access (this floor): shape, dtype, device, data_ptr, item, to_vector, detach, set_data;
//  - a non-differentiable query (this floor): argmax;
//  - in-place writes (this floor): add_, sub_, mul_, copy_, fill_, zero_. They write into the tensor's own
//    bytes and bump the storage's version; on a tensor that requires grad they are allowed only under
//    NoGradGuard;
//  - differentiable ops (reshape, sum, contiguous, to(DType), to(Device) ...) and backward(): declared here for a
//    fluent API, defined on the autograd floor (autograd/tensor_methods.cpp, autograd/engine.cpp), which records and
//    walks the graph. The free functions in autograd/functions.h are the same ops. This is the one allowed
//    downward declaration of an upper floor's code: tests/tools/check_layering.cmake checks that no other file
//    outside tensor/ defines a Tensor member (docs/architecture.md, "Layering").
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "tensor/tensor_impl.h"

namespace atelier {

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }
  TensorImpl* impl_ptr() const { return impl_.get(); }

  // --- metadata ---
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(shape()); }
  int64_t offset() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const;
  uint64_t version() const { return storage()->version(); }

  // --- raw access (CPU) ---
  // Pointer to the first element (storage data + offset). data_ptr<T> checks T against dtype and device.
  void* raw_data() const;
  template <typename T>
  T* data_ptr() const;
  // The single element of a one-element tensor, converted to T (any device).
  template <typename T>
  T item() const;
  double item() const { return item<double>(); }
  // All elements in row-major order, copied to the host and converted to T.
  template <typename T>
  std::vector<T> to_vector() const;

  // --- autograd metadata ---
  bool requires_grad() const;
  // Marks a leaf as needing a gradient (floating dtypes only). Returns *this.
  const Tensor& requires_grad_(bool value = true) const;
  // The accumulated gradient of a leaf (undefined until backward reaches it).
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const { return grad_fn() == nullptr; }
  // Reverse-mode differentiation from this tensor (defined in autograd/engine.cpp). Without `grad`, the tensor
  // must have one element and the seed is 1.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  // Same storage, cut from the graph: no grad_fn, requires_grad false.
  Tensor detach() const;
  // Points this tensor (every handle to it) at src's storage, layout and dtype, keeping its autograd metadata:
  // how Module::to() moves parameters without invalidating an optimiser's handles.
  void set_data(const Tensor& src) const;

  // --- non-differentiable query ---
  Tensor argmax(int64_t dim, bool keepdim = false) const;  // int64 indices of the first maximum

  // --- in-place writes (bump the version); `other` broadcasts to this tensor's shape ---
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& add_(double value);
  Tensor& sub_(const Tensor& other);
  Tensor& sub_(double value);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double value);
  Tensor& copy_(const Tensor& src);
  Tensor& fill_(double value);
  Tensor& zero_();

  // --- differentiable ops (autograd/tensor_methods.cpp) ---
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  // A copy on `device` (this tensor itself if already there). Differentiable: the gradient is copied back, so a
  // CPU leaf can feed a graph on the GPU and receive its .grad on the CPU.
  Tensor to(Device device) const;
  Tensor reshape(const Shape& shape) const;  // one dim may be -1
  Tensor view(const Shape& shape) const;     // like reshape, but throws instead of copying
  // start_dim 0 as torch.flatten (every dim); nn::Flatten starts at 1 as torch.nn.Flatten (keeps the batch).
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor expand(const Shape& shape) const;  // -1 keeps a dimension
  Tensor squeeze(int64_t dim) const;
  Tensor squeeze() const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor sum(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  Tensor mean(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  Tensor amax(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;  // torch.amax
  Tensor amin(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;  // torch.amin
  // torch.var: correction 1 is Bessel's (autograd/functions.h's var refuses n - correction <= 0)
  Tensor var(const std::vector<int64_t>& dims = {}, int64_t correction = 1, bool keepdim = false) const;
  Tensor logsumexp(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;  // torch.logsumexp

  std::string to_string() const;

 private:
  const TensorImpl& checked() const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace atelier

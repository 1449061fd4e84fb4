// TensorImpl: what a Tensor handle points to. Storage + sizes + strides (in elements) + storage offset + dtype,
// and the autograd metadata the tensor floor only holds, never interprets: requires_grad, the accumulated
// gradient, and grad_fn, the graph node that produced this tensor (forward-declared: autograd/ defines it).
//
// The fields are private: the floors above read them through Tensor and change them only through the setters
// below, each of which names the one job that needs it.
#pragma once

#include <atomic>
#include <memory>

#include "tensor/shape.h"
#include "tensor/storage.h"

namespace atelier {

class Node;

class TensorImpl {
 public:
  TensorImpl(std::shared_ptr<Storage> storage, Shape sizes, Shape strides, int64_t offset, DType dtype);
  ~TensorImpl();
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;

  const std::shared_ptr<Storage>& storage() const { return storage_; }
  const Shape& sizes() const { return sizes_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }  // in elements
  DType dtype() const { return dtype_; }

  // Points this impl at other bytes and layout: Module::to() moves a parameter this way, so every handle to it
  // (the module's, an optimiser's) sees the new device or dtype.
  void set_data(std::shared_ptr<Storage> storage, Shape sizes, Shape strides, int64_t offset, DType dtype);

  // Autograd metadata. A leaf is a tensor without grad_fn; only leaves that require grad accumulate `grad`.
  bool requires_grad() const { return requires_grad_; }
  void set_requires_grad(bool value) { requires_grad_ = value; }
  const std::shared_ptr<TensorImpl>& grad() const { return grad_; }
  void set_grad(std::shared_ptr<TensorImpl> grad) { grad_ = std::move(grad); }
  const std::shared_ptr<Node>& grad_fn() const { return grad_fn_; }
  int output_nr() const { return output_nr_; }  // which output of grad_fn this tensor is
  // Makes this tensor output `output_nr` of `node` (autograd's record()); it then requires grad.
  void set_grad_fn(std::shared_ptr<Node> node, int output_nr);

 private:
  std::shared_ptr<Storage> storage_;
  Shape sizes_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_;

  bool requires_grad_ = false;
  std::shared_ptr<TensorImpl> grad_;
  std::shared_ptr<Node> grad_fn_;
  int output_nr_ = 0;
};

// Number of live TensorImpl objects: the leak tests read it.
int64_t live_tensor_impls();

}  // namespace atelier

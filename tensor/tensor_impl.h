// TensorImpl: what a Tensor handle points to. Storage + sizes + strides (in elements) + storage offset + dtype,
// and the autograd metadata the tensor floor only holds, never interprets: requires_grad, the accumulated
// gradient, and grad_fn, the graph node that produced this tensor (forward-declared: autograd/ defines it).
#pragma once

#include <atomic>
#include <memory>

#include "tensor/shape.h"
#include "tensor/storage.h"

namespace atelier {

class Node;

struct TensorImpl {
  TensorImpl(std::shared_ptr<Storage> storage, Shape sizes, Shape strides, int64_t offset, DType dtype);
  ~TensorImpl();
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;

  std::shared_ptr<Storage> storage;
  Shape sizes;
  Shape strides;
  int64_t offset = 0;  // in elements
  DType dtype;

  // Autograd metadata. A leaf is a tensor without grad_fn; only leaves that require grad accumulate `grad`.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  int output_nr = 0;  // which output of grad_fn this tensor is
};

// Number of live TensorImpl objects: the leak tests read it.
int64_t live_tensor_impls();

}  // namespace atelier

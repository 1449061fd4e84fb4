#include "autograd/node.h"

#include <atomic>

#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {
std::atomic<int64_t> g_live_nodes{0};
}

int64_t live_nodes() { return g_live_nodes.load(std::memory_order_relaxed); }

SavedTensor::SavedTensor(const Tensor& t)
    : storage_(t.storage()),
      sizes_(t.shape()),
      strides_(t.strides()),
      offset_(t.offset()),
      dtype_(t.dtype()),
      version_(t.version()) {}

Tensor SavedTensor::unpack() const {
  ATELIER_ASSERT(storage_ != nullptr, "unpacking an empty SavedTensor");
  ATELIER_CHECK(storage_->version() == version_,
                "a tensor of shape " << sizes_ << " saved for the gradient was modified by an in-place operation "
                                     << "(version " << version_ << " when saved, " << storage_->version()
                                     << " now); clone() it before writing to it, or write before the forward pass");
  return Tensor(std::make_shared<TensorImpl>(storage_, sizes_, strides_, offset_, dtype_));
}

Node::Node(std::string name, std::vector<Edge> next_edges, int num_outputs, BackwardFn backward)
    : name_(std::move(name)),
      next_edges_(std::move(next_edges)),
      num_outputs_(num_outputs),
      backward_(std::move(backward)) {
  for (const Edge& e : next_edges_) needs_.push_back(e.defined());
  g_live_nodes.fetch_add(1, std::memory_order_relaxed);
}

Node::~Node() { g_live_nodes.fetch_sub(1, std::memory_order_relaxed); }

std::vector<Tensor> Node::apply(const std::vector<Tensor>& grad_outputs) {
  ATELIER_CHECK(backward_ != nullptr,
                "trying to run backward through the graph a second time (node '"
                    << name_ << "'): its saved tensors were freed after the first backward(); "
                    << "call backward(grad, /*retain_graph=*/true) the first time if you need to do this");
  std::vector<Tensor> grads = backward_(grad_outputs, needs_);
  ATELIER_ASSERT(grads.size() == next_edges_.size(), "backward of '" << name_ << "' returned " << grads.size()
                                                                     << " gradients for " << next_edges_.size()
                                                                     << " inputs");
  return grads;
}

}  // namespace atelier

#include "autograd/node.h"

#include <algorithm>
#include <atomic>
#include <vector>

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

// Tearing down a graph without recursion. Destroying a Node destroys its edges, whose shared_ptrs may destroy
// the producer Nodes, whose edges ... : a chain of 300,000 ops would nest 300,000 destructors and overflow the
// stack. Instead, the outermost ~Node on a thread becomes the drainer: it moves the Node pointers of its edges
// (and, through its formula's captures, of anything they kept alive) to a list and releases them one at a time.
// A Node that dies meanwhile finds that list through `tl_teardown` and appends its own producers to it instead
// of releasing them, so destructors nest at most a few levels deep, whatever the graph's length.
namespace {
thread_local std::vector<std::shared_ptr<Node>>* tl_teardown = nullptr;
}  // namespace

Node::~Node() {
  g_live_nodes.fetch_sub(1, std::memory_order_relaxed);
  std::vector<std::shared_ptr<Node>> local;
  const bool drainer = tl_teardown == nullptr;
  if (drainer) tl_teardown = &local;
  for (Edge& e : next_edges_) {
    if (e.node) tl_teardown->push_back(std::move(e.node));
  }
  backward_ = nullptr;  // a Node kept alive only by the formula's captures is queued too
  if (!drainer) return;
  while (!local.empty()) {
    std::shared_ptr<Node> node = std::move(local.back());
    local.pop_back();
    node.reset();  // when this was the last owner, its ~Node appends its producers to `local`
  }
  tl_teardown = nullptr;
}

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

std::vector<bool> disjoint_slices(const std::vector<Tensor>& grads) {
  // A node has a few inputs: pairwise scans, no allocation but the flags.
  std::vector<bool> keep(grads.size(), false);
  const auto candidate = [&](size_t i) {
    const Tensor& g = grads[i];
    return g.defined() && g.is_contiguous() && g.impl().use_count() == 1;
  };
  for (size_t i = 0; i < grads.size(); ++i) {
    if (keep[i] || !candidate(i)) continue;
    // The candidates on i's storage: one holder of the storage each, or someone else (the output's gradient, a
    // caller's tensor) holds it too. Counted first, so that the usual node (no shared storage) allocates nothing.
    const auto same = [&](size_t j) { return candidate(j) && grads[j].storage() == grads[i].storage(); };
    long count = 1;
    for (size_t j = i + 1; j < grads.size(); ++j) count += same(j) ? 1 : 0;
    if (count < 2 || grads[i].storage().use_count() != count) continue;
    std::vector<size_t> members{i};
    for (size_t j = i + 1; j < grads.size(); ++j) {
      if (same(j)) members.push_back(j);
    }
    std::sort(members.begin(), members.end(),
              [&](size_t a, size_t b) { return grads[a].offset() < grads[b].offset(); });
    bool disjoint = true;
    for (size_t j = 1; j < members.size(); ++j) {
      const Tensor& before = grads[members[j - 1]];
      disjoint = disjoint && before.offset() + before.numel() <= grads[members[j]].offset();
    }
    for (size_t m : members) keep[m] = disjoint;
  }
  return keep;
}

}  // namespace atelier

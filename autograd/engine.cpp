// The backward engine: Tensor::backward() walks the graph from the root in reverse topological order, running
// each Node's formula once all the gradients flowing into it have arrived, and accumulates into leaves' .grad.
#include <atomic>
#include <unordered_map>

#include "autograd/node.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {

std::atomic<int64_t> g_unneeded_gradients{0};

// a + b where either may be undefined (no contribution yet).
Tensor accumulate(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return raw::binary(BinaryOp::Add, a, b);
}

// `disjoint`: grad is one of a node's gradients whose storage only they hold, in disjoint elements
// (disjoint_slices, node.h).
void accumulate_into_leaf(TensorImpl& leaf, const Tensor& grad, bool disjoint = false) {
  ATELIER_ASSERT(grad.shape() == leaf.sizes(),
                 "gradient of shape " << grad.shape() << " for a leaf of shape " << leaf.sizes());
  const Device device = leaf.storage()->device();
  ATELIER_ASSERT(grad.device() == device,
                 "gradient on " << grad.device() << " for a leaf on " << device << " of shape " << leaf.sizes());
  if (leaf.grad()) {
    leaf.set_grad(raw::binary(BinaryOp::Add, Tensor(leaf.grad()), grad).impl());
    return;
  }
  // Keep the gradient only if nothing else can see its elements: a formula may pass the same tensor to several
  // inputs (add does), and a later in-place update of one leaf's .grad must not change another's.
  bool exclusive = grad.impl().use_count() == 1 && (disjoint || grad.storage().use_count() == 1) &&
                   grad.is_contiguous() && grad.dtype() == leaf.dtype();
  Tensor owned = exclusive ? grad : raw::clone(raw::cast(grad, leaf.dtype()));
  leaf.set_grad(owned.impl());
}

// Every node reachable from `root`, each with the number of edges pointing at it from other reachable nodes.
std::vector<std::shared_ptr<Node>> collect(const std::shared_ptr<Node>& root,
                                           std::unordered_map<Node*, int>& dependencies) {
  std::vector<std::shared_ptr<Node>> nodes{root};
  dependencies[root.get()] = 0;
  // Iterative DFS: a deep graph (a long training unroll) must not overflow the stack.
  std::vector<Node*> stack{root.get()};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& e : node->next_edges()) {
      if (!e.node) continue;
      auto [it, inserted] = dependencies.try_emplace(e.node.get(), 0);
      ++it->second;
      if (inserted) {
        nodes.push_back(e.node);
        stack.push_back(e.node.get());
      }
    }
  }
  return nodes;
}

// The gradient that starts backward from `root`: `grad`, or 1 for a one-element root, cast to root's dtype (a
// float64 seed on a float32 graph would otherwise meet float32 tensors in the first formula).
Tensor make_seed(const Tensor& root, const Tensor& grad) {
  ATELIER_CHECK(root.requires_grad(), "backward: the tensor (shape "
                                          << root.shape()
                                          << ") does not require grad; did you forget requires_grad_() on a "
                                          << "parameter, or compute it under NoGradGuard?");
  if (!grad.defined()) {
    ATELIER_CHECK(root.numel() == 1,
                  "backward: a gradient can be created implicitly only for a one-element tensor, "
                  "this one has shape "
                      << root.shape() << "; pass backward(grad)");
    return ones(root.shape(), root.dtype(), root.device());
  }
  ATELIER_CHECK(grad.shape() == root.shape(),
                "backward: gradient of shape " << grad.shape() << " for a tensor of shape " << root.shape());
  ATELIER_CHECK(grad.device() == root.device(),
                "backward: gradient on " << grad.device() << " for a tensor on " << root.device());
  return raw::cast(grad, root.dtype());
}

// Runs `node`'s formula on the gradients of its outputs; no gradient at all means nothing to run.
std::vector<Tensor> run_node(Node& node, const std::vector<Tensor>& grad_outputs, bool retain_graph) {
  bool any = false;
  for (const Tensor& g : grad_outputs) any = any || g.defined();
  if (!any) return {};
  std::vector<Tensor> grad_inputs;
  try {
    grad_inputs = node.apply(grad_outputs);
  } catch (const Error& e) {
    throw Error("backward of '" + node.name() + "': " + e.what());
  }
  if (!retain_graph) node.release();
  return grad_inputs;
}

// Where each node's incoming gradients wait until all of them have arrived (Kahn's algorithm).
class GradientQueue {
 public:
  GradientQueue(const std::shared_ptr<Node>& root, int root_output, Tensor seed) {
    nodes_ = collect(root, dependencies_);
    pending_[root.get()] = std::vector<Tensor>(root->num_outputs());
    pending_[root.get()][root_output] = std::move(seed);
    ready_.push_back(root.get());
  }

  // The next node whose every incoming edge has delivered (or declined) its gradient, with those gradients;
  // nullptr when the walk is over.
  Node* pop(std::vector<Tensor>& grad_outputs) {
    if (ready_.empty()) return nullptr;
    Node* node = ready_.back();
    ready_.pop_back();
    grad_outputs = std::move(pending_[node]);
    pending_.erase(node);
    return node;
  }

  // Sends gradient `g` (possibly undefined) along edge `e`: into a leaf's .grad, or to the node's pending sum.
  void deliver(const Edge& e, Tensor g, bool disjoint) {
    if (!e.defined()) {
      if (g.defined()) g_unneeded_gradients.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (e.leaf) {
      if (g.defined()) accumulate_into_leaf(*e.leaf, g, disjoint);
      return;
    }
    std::vector<Tensor>& slot = pending_[e.node.get()];
    if (slot.empty()) slot.resize(e.node->num_outputs());
    if (g.defined()) slot[e.output_nr] = accumulate(slot[e.output_nr], g);
    if (--dependencies_[e.node.get()] == 0) ready_.push_back(e.node.get());
  }

 private:
  std::vector<std::shared_ptr<Node>> nodes_;                // every reachable node, kept alive for the walk
  std::unordered_map<Node*, int> dependencies_;             // edges still to deliver into each node
  std::unordered_map<Node*, std::vector<Tensor>> pending_;  // gradients waiting for each node, per output
  std::vector<Node*> ready_;
};

}  // namespace

int64_t unneeded_gradients_computed() { return g_unneeded_gradients.load(std::memory_order_relaxed); }

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  Tensor seed = make_seed(*this, grad);
  NoGradGuard no_grad;  // backward formulas build no graph
  if (is_leaf()) {
    accumulate_into_leaf(*impl(), seed);
    return;
  }
  GradientQueue queue(grad_fn(), impl()->output_nr(), std::move(seed));
  std::vector<Tensor> grad_outputs;
  while (Node* node = queue.pop(grad_outputs)) {
    std::vector<Tensor> grad_inputs = run_node(*node, grad_outputs, retain_graph);
    grad_outputs.clear();  // free them before the next node runs
    const std::vector<Edge>& edges = node->next_edges();
    const std::vector<bool> disjoint = disjoint_slices(grad_inputs);
    for (size_t i = 0; i < edges.size(); ++i) {
      const bool given = i < grad_inputs.size();
      queue.deliver(edges[i], given ? std::move(grad_inputs[i]) : Tensor(), given && disjoint[i]);
    }
  }
}

}  // namespace atelier

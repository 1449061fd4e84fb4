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

void accumulate_into_leaf(TensorImpl& leaf, const Tensor& grad) {
  ATELIER_CHECK(grad.shape() == leaf.sizes,
                "internal error: gradient of shape " << grad.shape() << " for a leaf of shape " << leaf.sizes);
  if (leaf.grad) {
    leaf.grad = raw::binary(BinaryOp::Add, Tensor(leaf.grad), grad).impl();
    return;
  }
  // Keep the gradient only if nothing else can see it: a formula may pass the same tensor to several inputs
  // (add does), and a later in-place update of one leaf's .grad must not change another's.
  bool exclusive = grad.impl().use_count() == 1 && grad.storage().use_count() == 1 && grad.is_contiguous() &&
                   grad.dtype() == leaf.dtype;
  Tensor owned = exclusive ? grad : raw::clone(raw::cast(grad, leaf.dtype));
  leaf.grad = owned.impl();
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

}  // namespace

int64_t unneeded_gradients_computed() { return g_unneeded_gradients.load(std::memory_order_relaxed); }

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  ATELIER_CHECK(requires_grad(), "backward: the tensor (shape "
                                     << shape()
                                     << ") does not require grad; did you forget requires_grad_() on a parameter, "
                                     << "or compute it under NoGradGuard?");
  Tensor seed = grad;
  if (!seed.defined()) {
    ATELIER_CHECK(numel() == 1,
                  "backward: a gradient can be created implicitly only for a one-element tensor, "
                  "this one has shape "
                      << shape() << "; pass backward(grad)");
    seed = ones(shape(), dtype(), device());
  }
  ATELIER_CHECK(seed.shape() == shape(),
                "backward: gradient of shape " << seed.shape() << " for a tensor of shape " << shape());
  NoGradGuard no_grad;  // backward formulas build no graph
  if (is_leaf()) {
    accumulate_into_leaf(*impl(), raw::cast(seed, dtype()));
    return;
  }

  std::unordered_map<Node*, int> dependencies;
  std::vector<std::shared_ptr<Node>> nodes = collect(grad_fn(), dependencies);
  std::unordered_map<Node*, std::vector<Tensor>> pending;  // gradients waiting for each node, per output
  pending[grad_fn().get()] = std::vector<Tensor>(grad_fn()->num_outputs());
  pending[grad_fn().get()][impl()->output_nr] = seed;

  // Kahn's algorithm: a node runs once every edge into it has delivered (or declined) its gradient.
  std::vector<Node*> ready{grad_fn().get()};
  while (!ready.empty()) {
    Node* node = ready.back();
    ready.pop_back();
    std::vector<Tensor> grad_outputs = std::move(pending[node]);
    pending.erase(node);
    bool any = false;
    for (const Tensor& g : grad_outputs) any = any || g.defined();

    std::vector<Tensor> grad_inputs;
    if (any) {
      try {
        grad_inputs = node->apply(grad_outputs);
      } catch (const Error& e) {
        throw Error("backward of '" + node->name() + "': " + e.what());
      }
      if (!retain_graph) node->release();
    }
    grad_outputs.clear();

    const std::vector<Edge>& edges = node->next_edges();
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      Tensor g = i < grad_inputs.size() ? std::move(grad_inputs[i]) : Tensor();
      if (!e.defined()) {
        if (g.defined()) g_unneeded_gradients.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (e.leaf) {
        if (g.defined()) accumulate_into_leaf(*e.leaf, g);
        continue;
      }
      std::vector<Tensor>& slot = pending[e.node.get()];
      if (slot.empty()) slot.resize(e.node->num_outputs());
      if (g.defined()) slot[e.output_nr] = accumulate(slot[e.output_nr], g);
      if (--dependencies[e.node.get()] == 0) ready.push_back(e.node.get());
    }
  }
}

}  // namespace atelier

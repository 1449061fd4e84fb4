// The graph of reverse-mode autograd: a Node per recorded op, Edges to the producers of its inputs, and
// SavedTensor, the safe way for a node to keep a tensor for its backward formula.
//
// Ownership runs one way: an output TensorImpl owns its grad_fn Node, a Node owns the Nodes (and leaf
// TensorImpls) of its inputs through its edges. A Node never owns a TensorImpl that points back to it: tensors it
// needs are kept as SavedTensor (storage + layout, no grad_fn), otherwise every step's graph would leak.
// Destroying a graph is iterative (~Node queues its producers on the outermost ~Node's list instead of
// destroying them inside its own destructor), so a graph of any length is torn down in bounded stack depth.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace atelier {

class Node;

// Where the gradient of one input goes: to output `output_nr` of the node that produced it, or into a leaf's
// .grad. An undefined edge (neither) means the input does not require grad.
struct Edge {
  std::shared_ptr<Node> node;
  int output_nr = 0;
  std::shared_ptr<TensorImpl> leaf;

  bool defined() const { return node != nullptr || leaf != nullptr; }
};

// A tensor kept for backward: storage, sizes, strides, offset and the storage version at save time. unpack()
// throws if the storage was written in place since (the gradient would be silently wrong).
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  Tensor unpack() const;
  bool defined() const { return storage_ != nullptr; }

 private:
  std::shared_ptr<Storage> storage_;
  Shape sizes_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::Float32;
  uint64_t version_ = 0;
};

// The backward formula of one op: gradients of the outputs in, gradients of the inputs out (one per input;
// an undefined Tensor where needs_input_grad is false or the gradient is zero).
using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs,
                                                     const std::vector<bool>& needs_input_grad)>;

class Node {
 public:
  Node(std::string name, std::vector<Edge> next_edges, int num_outputs, BackwardFn backward);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<Edge>& next_edges() const { return next_edges_; }
  int num_outputs() const { return num_outputs_; }
  bool needs_input_grad(size_t i) const { return next_edges_[i].defined(); }

  // Runs the backward formula. Throws if release() has run (a second backward without retain_graph).
  std::vector<Tensor> apply(const std::vector<Tensor>& grad_outputs);
  // Frees the formula and the tensors it saved.
  void release() { backward_ = nullptr; }

 private:
  std::string name_;
  std::vector<Edge> next_edges_;
  std::vector<bool> needs_;
  int num_outputs_;
  BackwardFn backward_;
};

// Which of one node's gradients share their storage with nothing but each other, in disjoint elements: cat's
// backward hands its inputs slices of one gradient. The engine lets a leaf keep such a slice as its .grad (an
// in-place update of one cannot reach another's elements, as it could if a gradient were shared), where it copies
// a gradient whose storage anything else holds. Each must be contiguous and held only by `grads`, and the storage
// only by these gradients. One flag per gradient.
std::vector<bool> disjoint_slices(const std::vector<Tensor>& grads);

// Number of live Nodes: the leak tests read it.
int64_t live_nodes();

// Gradients a node returned for inputs that did not need one (wasted work; the op table tests it stays 0).
int64_t unneeded_gradients_computed();

}  // namespace atelier

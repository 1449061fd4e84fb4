// should_record and record: the two calls every differentiable op makes (see autograd/record.h).
#include "autograd/record.h"

#include "backends/error.h"
#include "tensor/grad_mode.h"

namespace atelier {

namespace {

// Where the gradient of input `t` goes: its grad_fn's output, its own .grad (a leaf that requires grad), or
// nowhere (an undefined edge).
Edge edge_to(const Tensor& t) {
  Edge e;
  if (!t.defined() || !t.requires_grad()) return e;
  if (t.grad_fn()) {
    e.node = t.grad_fn();
    e.output_nr = t.impl()->output_nr();
  } else {
    e.leaf = t.impl();
  }
  return e;
}

template <class Tensors>
bool should_record_range(const Tensors& inputs) {
  if (!grad_mode_enabled()) return false;
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

}  // namespace

bool should_record(std::initializer_list<Tensor> inputs) { return should_record_range(inputs); }
bool should_record(const std::vector<Tensor>& inputs) { return should_record_range(inputs); }

std::vector<Tensor> record(const char* name, const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                           BackwardFn backward) {
  std::vector<Edge> edges;
  edges.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    for (const Tensor& out : outputs) {
      ATELIER_ASSERT(!t.defined() || t.impl() != out.impl(),
                     "op '" << name << "' recorded its input as its own output");
    }
    edges.push_back(edge_to(t));
  }
  auto node = std::make_shared<Node>(name, std::move(edges), static_cast<int>(outputs.size()), std::move(backward));
  for (size_t i = 0; i < outputs.size(); ++i) outputs[i].impl()->set_grad_fn(node, static_cast<int>(i));
  return outputs;
}

Tensor record(const char* name, const Tensor& out, const std::vector<Tensor>& inputs, BackwardFn backward) {
  return record(name, std::vector<Tensor>{out}, inputs, std::move(backward))[0];
}

Tensor record(const char* name, const Tensor& out, std::initializer_list<Tensor> inputs, BackwardFn backward) {
  return record(name, out, std::vector<Tensor>(inputs), std::move(backward));
}

}  // namespace atelier

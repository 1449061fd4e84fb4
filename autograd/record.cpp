#include "autograd/record.h"

#include "backends/error.h"
#include "tensor/grad_mode.h"

namespace atelier {

bool should_record(std::initializer_list<Tensor> inputs) {
  if (!grad_mode_enabled()) return false;
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

Tensor record(const char* name, const Tensor& out, const std::vector<Tensor>& inputs, BackwardFn backward) {
  std::vector<Edge> edges;
  edges.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    ATELIER_CHECK(!t.defined() || t.impl() != out.impl(),
                  "internal error: op '" << name << "' recorded its input as its own output");
    Edge e;
    if (t.defined() && t.requires_grad()) {
      if (t.grad_fn()) {
        e.node = t.grad_fn();
        e.output_nr = t.impl()->output_nr;
      } else {
        e.leaf = t.impl();
      }
    }
    edges.push_back(std::move(e));
  }
  TensorImpl& impl = *out.impl();
  impl.grad_fn = std::make_shared<Node>(name, std::move(edges), 1, std::move(backward));
  impl.output_nr = 0;
  impl.requires_grad = true;
  return out;
}

Tensor record(const char* name, const Tensor& out, std::initializer_list<Tensor> inputs, BackwardFn backward) {
  return record(name, out, std::vector<Tensor>(inputs), std::move(backward));
}

}  // namespace atelier

// Helpers for writing a differentiable op (see docs/adding-an-op.md). An op runs its raw forward, then, only if
// should_record() says so, records a Node whose BackwardFn computes the gradients its inputs need:
//
//   Tensor mul(const Tensor& a, const Tensor& b) {
//     Tensor out = raw::binary(BinaryOp::Mul, a, b);
//     if (!should_record({a, b})) return out;
//     return record("mul", out, {a, b}, [sa = SavedTensor(a), sb = SavedTensor(b), ...](auto& g, auto& needs) {
//       ... return {needs[0] ? ... : Tensor(), needs[1] ? ... : Tensor()};
//     });
//   }
#pragma once

#include <initializer_list>
#include <vector>

#include "autograd/node.h"

namespace atelier {

// Grad mode is on and at least one input requires grad.
bool should_record(std::initializer_list<Tensor> inputs);
bool should_record(const std::vector<Tensor>& inputs);

// Makes `out` the output of a new Node named `name` with edges to `inputs`; returns `out` (now requiring grad).
// `out` must be a fresh TensorImpl (not one of the inputs).
Tensor record(const char* name, const Tensor& out, std::initializer_list<Tensor> inputs, BackwardFn backward);
Tensor record(const char* name, const Tensor& out, const std::vector<Tensor>& inputs, BackwardFn backward);
// The same for an op with several outputs: output i becomes output i of the node, and `backward` receives one
// gradient per output (undefined for an output that no gradient reached).
std::vector<Tensor> record(const char* name, const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                           BackwardFn backward);

}  // namespace atelier

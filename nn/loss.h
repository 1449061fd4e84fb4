// Loss objects, for code that wants a loss it can hold and pass around (nn::MSELoss loss; loss(y, t)). They are
// thin wrappers over the differentiable losses of autograd/functions.h, which check the shapes; all reduce by the
// mean, as PyTorch's defaults do. They are not Modules: a loss takes two inputs and owns no parameters.
#pragma once

#include "autograd/functions.h"

namespace atelier::nn {

// mean |input - target|; input and target must have the same shape (no broadcasting, see MSELoss).
struct L1Loss {
  Tensor operator()(const Tensor& input, const Tensor& target) const { return l1_loss(input, target); }
};

// mean (input - target)^2; input and target must have the same shape. Losses do not broadcast, unlike the
// elementwise ops: an (N, 1) input against an (N) target would silently become an (N, N) mean, so it throws instead.
struct MSELoss {
  Tensor operator()(const Tensor& input, const Tensor& target) const { return mse_loss(input, target); }
};

// mean over the batch of -log softmax(logits)[label]; logits (N, C), labels int64 (N) in [0, C).
struct CrossEntropyLoss {
  Tensor operator()(const Tensor& logits, const Tensor& labels) const { return cross_entropy(logits, labels); }
};

// mean over every element of the binary cross-entropy of sigmoid(logits) against target (same shape, usually in
// [0, 1]), computed from the logits so that it stays finite for any logit (torch.nn.BCEWithLogitsLoss).
struct BCEWithLogitsLoss {
  Tensor operator()(const Tensor& logits, const Tensor& target) const {
    return binary_cross_entropy_with_logits(logits, target);
  }
};

}  // namespace atelier::nn

// The end of a forward convolution on the CPU, applied to each output element while it is still in cache:
// + bias[o], then the activation (Conv2dForwardArgs::activation). im2col (conv.cpp) applies it to each tile's rows
// after the GEMM, Winograd (winograd.cpp) to each output tile in its output transform.
#pragma once

#include <cstdint>

#include "backends/args.h"
#include "backends/cpu/eigen.h"

namespace atelier::cpu {

template <typename T>
struct ConvEpilogue {
  const T* bias = nullptr;  // (C_out) or null
  bool elu = false;
  T alpha = 1;

  static ConvEpilogue from(const Conv2dForwardArgs& args) {
    return {static_cast<const T*>(args.bias), args.activation == ConvActivation::Elu, static_cast<T>(args.alpha)};
  }
  bool empty() const { return bias == nullptr && !elu; }

  // `count` contiguous outputs of channel o, in place.
  void apply(int64_t o, T* row, int64_t count) const {
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> r(row, count);
    if (elu) {
      r = elu_array(r + (bias != nullptr ? bias[o] : T(0)), alpha);
    } else if (bias != nullptr) {
      r += bias[o];
    }
  }
};

}  // namespace atelier::cpu

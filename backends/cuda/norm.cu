// Normalisation by groups on the GPU (backends/args.h, NormArgs). CPU twin: backends/cpu/norm.cpp; both run the
// per-element arithmetic of backends/norm_math.h.
//   forward   one block per group: the block's threads sum its elements (a fixed-order fold, backends/cuda/
//             block_reduce.h), then the squared deviations from the mean, then write y;
//   backward  one block per group: the sums of g w and g w xhat, then grad_x (and a PerGroup affine's weight and
//             bias gradients, which are those sums); a PerInner affine's gradients are one block per element i,
//             its threads sharing its column's terms over every (o, c), a PerChannel one's one block per channel.
// Sums in double. A thread finds (o, i) of its element with a Divisor (backends/fast_divide.h). The results equal the
// CPU's to rounding: the sums are taken in another order.
#include <cstdint>

#include "backends/cuda/block_reduce.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device_math.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/fast_divide.h"
#include "backends/host_device.h"
#include "backends/norm_math.h"

namespace atelier {
namespace {

using cuda::block_fold_to_all;
using cuda::kReduceBlock;
using Block = cuda::BlockContext<double, kReduceBlock>;

// The (outer, groups, inner) view, and where the e-th element of group c is (e < outer * inner).
struct Groups {
  int64_t outer, groups, inner;
  Divisor by_inner;
  ATELIER_HOST_DEVICE int64_t at(int64_t c, int64_t e) const {
    int64_t i;
    const int64_t o = by_inner.divide(e, i);
    return norm_index(groups, inner, o, c, i);
  }
  ATELIER_HOST_DEVICE int64_t inner_of(int64_t e) const {
    int64_t i;
    by_inner.divide(e, i);
    return i;
  }
  ATELIER_HOST_DEVICE int64_t count() const { return outer * inner; }
};

// CPU twin: forward_runs. Block c: group c.
template <typename T>
struct NormForward {
  NormArgs a;
  Groups v;
  ATELIER_HOST_DEVICE void operator()(Block& b) const {
    const T* x = static_cast<const T*>(a.x);
    const int64_t c = b.block, n = v.count();
    double sum = 0;
    for (int64_t e = b.thread; e < n; e += kReduceBlock) sum += static_cast<double>(x[v.at(c, e)]);
    const double mean = block_fold_to_all<cuda::SumReducer<T>>(b, sum) / static_cast<double>(n);
    double squares = 0;
    for (int64_t e = b.thread; e < n; e += kReduceBlock) {
      const double d = static_cast<double>(x[v.at(c, e)]) - mean;
      squares += d * d;
    }
    const double var = block_fold_to_all<cuda::SumReducer<T>>(b, squares) / static_cast<double>(n);
    const double rstd = 1.0 / cuda::dev_sqrt(var + a.eps);
    if (b.thread == 0) {
      static_cast<T*>(a.mean)[c] = static_cast<T>(mean);
      static_cast<T*>(a.rstd)[c] = static_cast<T>(rstd);
      if (a.var != nullptr) static_cast<T*>(a.var)[c] = static_cast<T>(var);
    }
    const T* weight = static_cast<const T*>(a.weight);
    const T* bias = static_cast<const T*>(a.bias);
    const NormAffineMap map{a.affine, a.inner, a.channels};
    for (int64_t e = b.thread; e < n; e += kReduceBlock) {
      const int64_t at = v.at(c, e), i = v.inner_of(e);
      static_cast<T*>(a.y)[at] =
          static_cast<T>(norm_output(static_cast<double>(x[at]), mean, 0.0, rstd, norm_affine(weight, map, c, i, 1.0),
                                     norm_affine(bias, map, c, i, 0.0)));
    }
  }
};

// CPU twin: backward_runs' loop over the groups. Block c: group c.
template <typename T>
struct NormBackward {
  NormBackwardArgs a;
  Groups v;
  ATELIER_HOST_DEVICE void operator()(Block& b) const {
    const T* g = static_cast<const T*>(a.grad_y);
    const T* x = static_cast<const T*>(a.x);
    const T* weight = static_cast<const T*>(a.weight);
    const bool per_element = a.affine != NormAffine::PerGroup;  // a weight per element, inside the sums
    const NormAffineMap map{a.affine, a.inner, a.channels};
    const int64_t c = b.block, n = v.count();
    const double mean = static_cast<double>(static_cast<const T*>(a.mean)[c]);
    const double rstd = static_cast<double>(static_cast<const T*>(a.rstd)[c]);
    double sum_g = 0, sum_gx = 0;  // sum(g w_i) and sum(g w_i xhat), w_i = 1 for PerGroup
    for (int64_t e = b.thread; e < n; e += kReduceBlock) {
      const int64_t at = v.at(c, e);
      const double w = per_element ? norm_affine(weight, map, c, v.inner_of(e), 1.0) : 1.0;
      const double gw = static_cast<double>(g[at]) * w;
      sum_g += gw;
      sum_gx += gw * ((static_cast<double>(x[at]) - mean) * rstd);
    }
    sum_g = block_fold_to_all<cuda::SumReducer<T>>(b, sum_g);
    sum_gx = block_fold_to_all<cuda::SumReducer<T>>(b, sum_gx);
    if (!per_element && b.thread == 0) {
      if (a.grad_weight != nullptr) static_cast<T*>(a.grad_weight)[c] = static_cast<T>(sum_gx);
      if (a.grad_bias != nullptr) static_cast<T*>(a.grad_bias)[c] = static_cast<T>(sum_g);
    }
    if (a.grad_x == nullptr) return;
    const double wc = per_element ? 1.0 : norm_affine(weight, map, c, 0, 1.0);
    const NormGradTerms terms = norm_grad_terms(rstd, sum_g * wc, sum_gx * wc, static_cast<double>(n));
    for (int64_t e = b.thread; e < n; e += kReduceBlock) {
      const int64_t at = v.at(c, e);
      const double w = per_element ? norm_affine(weight, map, c, v.inner_of(e), 1.0) : wc;
      static_cast<T*>(a.grad_x)[at] = static_cast<T>(
          norm_grad_x(static_cast<double>(g[at]), static_cast<double>(x[at]), mean, rstd, w, terms.shift, terms.slope));
    }
  }
};

// Adds element `at` (of group c) to an affine's weight gradient, sum(g xhat), and bias gradient, sum(g).
template <typename T>
ATELIER_HOST_DEVICE void add_affine_terms(const NormBackwardArgs& a, int64_t at, int64_t c, double& sum_gx,
                                          double& sum_g) {
  const double gi = static_cast<double>(static_cast<const T*>(a.grad_y)[at]);
  const double mean = static_cast<double>(static_cast<const T*>(a.mean)[c]);
  const double rstd = static_cast<double>(static_cast<const T*>(a.rstd)[c]);
  sum_gx += gi * (static_cast<double>(static_cast<const T*>(a.x)[at]) - mean) * rstd;
  sum_g += gi;
}

// One affine gradient pair: thread 0 of the block writes sum(g xhat) and sum(g) of its element or channel, each
// thread having summed its share of the terms (strided, fixed order), the block's fold adding the shares.
template <typename T>
ATELIER_HOST_DEVICE void write_affine_sums(const NormBackwardArgs& a, Block& b, int64_t index, double sum_gx,
                                           double sum_g) {
  sum_gx = block_fold_to_all<cuda::SumReducer<T>>(b, sum_gx);
  sum_g = block_fold_to_all<cuda::SumReducer<T>>(b, sum_g);
  if (b.thread != 0) return;
  if (a.grad_weight != nullptr) static_cast<T*>(a.grad_weight)[index] = static_cast<T>(sum_gx);
  if (a.grad_bias != nullptr) static_cast<T*>(a.grad_bias)[index] = static_cast<T>(sum_g);
}

// CPU twin: backward_runs' column sums. Block i: element i's weight and bias gradients (PerInner), its column's
// terms over every (o, c), thread t taking terms t, t + B, ... (a layer norm over rows of 32 has 32 columns of
// one term per row: one thread per column, summing a whole column in turn, had taken 4.9 ms for 32,768 rows on an
// H200).
template <typename T>
struct NormAffineColumns {
  NormBackwardArgs a;
  Divisor by_groups;
  ATELIER_HOST_DEVICE void operator()(Block& b) const {
    const int64_t i = b.block;
    double sum_gx = 0, sum_g = 0;
    for (int64_t k = b.thread; k < a.outer * a.groups; k += kReduceBlock) {
      int64_t c;
      const int64_t o = by_groups.divide(k, c);
      add_affine_terms<T>(a, norm_index(a.groups, a.inner, o, c, i), c, sum_gx, sum_g);
    }
    write_affine_sums<T>(a, b, i, sum_gx, sum_g);
  }
};

// CPU twin: backward_runs' channel sums. Block `channel`: its weight and bias gradients (PerChannel), the terms of
// its segment of every run of each group that holds it (runs numbered group by group, then o), thread t taking
// terms t, t + B, ...
template <typename T>
struct NormAffineChannels {
  NormBackwardArgs a;
  ATELIER_HOST_DEVICE void operator()(Block& b) const {
    const int64_t channel = b.block, size = a.channels.size, per_run = a.inner / size,
                  cycle = a.channels.count / per_run, first = channel / per_run;
    const int64_t holding = (a.groups - first + cycle - 1) / cycle;  // groups c = first, first + cycle, ...
    const int64_t terms = holding * a.outer * size, segment = (channel % per_run) * size;  // where in each run
    double sum_gx = 0, sum_g = 0;
    for (int64_t k = b.thread; k < terms; k += kReduceBlock) {
      const int64_t run = k / size, i = k % size;
      const int64_t c = first + run / a.outer * cycle, o = run % a.outer;
      add_affine_terms<T>(a, norm_index(a.groups, a.inner, o, c, segment + i), c, sum_gx, sum_g);
    }
    write_affine_sums<T>(a, b, channel, sum_gx, sum_g);
  }
};

}  // namespace

void CudaBackend::normalize(const NormArgs& a) {
  check_norm_sizes("cuda normalize", a.outer, a.groups, a.inner);
  check_norm_channels("cuda normalize", a.affine, a.groups, a.inner, a.channels);
  dispatch(cuda::normalize_types{}, a.dtype, "cuda normalize", [&]<class T> {
    if (a.groups == 0) return;
    cuda::launch_blocks<double, kReduceBlock>(a.groups,
                                              NormForward<T>{a, Groups{a.outer, a.groups, a.inner, Divisor(a.inner)}});
  });
}

void CudaBackend::normalize_backward(const NormBackwardArgs& a) {
  check_norm_sizes("cuda normalize_backward", a.outer, a.groups, a.inner);
  check_norm_channels("cuda normalize_backward", a.affine, a.groups, a.inner, a.channels);
  dispatch(cuda::normalize_backward_types{}, a.dtype, "cuda normalize_backward", [&]<class T> {
    if (a.groups == 0) return;
    cuda::launch_blocks<double, kReduceBlock>(a.groups,
                                              NormBackward<T>{a, Groups{a.outer, a.groups, a.inner, Divisor(a.inner)}});
    const bool affine_grads = a.grad_weight != nullptr || a.grad_bias != nullptr;
    if (affine_grads && a.affine == NormAffine::PerInner) {
      cuda::launch_blocks<double, kReduceBlock>(a.inner, NormAffineColumns<T>{a, Divisor(a.groups)});
    }
    if (affine_grads && a.affine == NormAffine::PerChannel) {
      cuda::launch_blocks<double, kReduceBlock>(a.channels.count, NormAffineChannels<T>{a});
    }
  });
}

}  // namespace atelier

// Batched matrix products on the backend GEMM; transposed views become transpose flags, not copies.
#include <algorithm>
#include <cstring>

#include "tensor/creation.h"
#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

namespace {

// How a (..., rows, cols) operand reaches the GEMM: its last two dims either row-major (unit column stride)
// or transposed (unit row stride), with one batch stride across the flattened batch dims.
struct GemmOperand {
  Tensor t;  // possibly a contiguous copy
  int64_t ld = 0;
  bool trans = false;
  int64_t batch_stride = 0;
};

// Whether the batch dims [0, nb) of t (already expanded to the batch shape) collapse to one stride.
bool batch_stride_of(const Tensor& t, size_t nb, int64_t& stride) {
  stride = 0;
  bool found = false;
  int64_t expected = 0;
  for (size_t i = nb; i-- > 0;) {
    if (t.shape()[i] == 1) continue;
    if (!found) {
      stride = t.strides()[i];
      expected = stride * t.shape()[i];
      found = true;
    } else {
      if (t.strides()[i] != expected) return false;
      expected *= t.shape()[i];
    }
  }
  // A fully broadcast batch (every stride 0) repeats one matrix: fine.
  return true;
}

GemmOperand gemm_operand(const Tensor& t, size_t nb) {
  int64_t rows = t.shape()[nb], cols = t.shape()[nb + 1];
  int64_t rs = t.strides()[nb], cs = t.strides()[nb + 1];
  GemmOperand op;
  int64_t bstride = 0;
  bool batch_ok = batch_stride_of(t, nb, bstride);
  if (batch_ok && (cs == 1 || cols == 1) && rs >= std::max<int64_t>(cols, 1)) {
    op = {t, rs, false, bstride};
  } else if (batch_ok && (rs == 1 || rows == 1) && cs >= std::max<int64_t>(rows, 1)) {
    op = {t, cs, true, bstride};
  } else {
    Tensor c = contiguous(t);
    // The batch dims of an expanded operand were materialised by the copy: stride = rows * cols.
    op = {c, cols, false, rows * cols};
  }
  if (op.ld == 0) op.ld = 1;
  return op;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  ATELIER_CHECK(a.dim() >= 2 && b.dim() >= 2,
                "matmul: both operands need at least 2 dimensions, got " << a.shape() << " and " << b.shape());
  check_same_device(a, b, "matmul");
  check_same_dtype(a, b, "matmul");
  check_floating(a, "matmul");
  int64_t m = a.size(-2), k = a.size(-1), k2 = b.size(-2), n = b.size(-1);
  ATELIER_CHECK(k == k2, "matmul: inner dimensions differ: " << a.shape() << " @ " << b.shape() << " (" << k << " vs "
                                                             << k2 << ")");
  Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, "matmul");
  size_t nb = batch.size();
  Shape a_full = batch, b_full = batch, out_shape = batch;
  a_full.insert(a_full.end(), {m, k});
  b_full.insert(b_full.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});
  Tensor out = raw::empty(out_shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  if (k == 0) {
    fill_(out, 0.0);
    return out;
  }
  GemmOperand ga = gemm_operand(expand(a, a_full), nb);
  GemmOperand gb = gemm_operand(expand(b, b_full), nb);
  GemmArgs args{};
  args.dtype = a.dtype();
  args.batch = shape_numel(batch);
  args.m = m;
  args.n = n;
  args.k = k;
  args.a = ga.t.raw_data();
  args.lda = ga.ld;
  args.batch_stride_a = ga.batch_stride;
  args.trans_a = ga.trans;
  args.b = gb.t.raw_data();
  args.ldb = gb.ld;
  args.batch_stride_b = gb.batch_stride;
  args.trans_b = gb.trans;
  args.c = out.raw_data();
  args.ldc = n;
  args.batch_stride_c = m * n;
  args.alpha = 1;
  args.beta = 0;
  launch<PrimitiveOp::gemm>(a.device(), "matmul", out.numel(), args);
  return out;
}

}  // namespace atelier::raw

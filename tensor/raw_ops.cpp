#include "tensor/raw_ops.h"

#include <algorithm>
#include <cstring>

#include "backends/backend.h"
#include "backends/error.h"
#include "tensor/creation.h"

namespace atelier::raw {

namespace {

Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

Layout layout_of(const Tensor& t) { return make_layout(t.shape(), t.strides()); }

// The strides that present `t` with shape `out` (NumPy broadcasting): 0 on broadcast dimensions.
Layout broadcast_layout(const Tensor& t, const Shape& out) {
  Shape strides(out.size(), 0);
  size_t lead = out.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i) {
    strides[lead + i] = t.shape()[i] == 1 && out[lead + i] != 1 ? 0 : t.strides()[i];
  }
  return make_layout(out, strides);
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  ATELIER_CHECK(a.device() == b.device(),
                op << ": tensors are on different devices (" << a.device() << " and " << b.device() << ")");
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  ATELIER_CHECK(a.dtype() == b.dtype(), op << ": dtypes differ (" << a.dtype() << " " << a.shape() << " and "
                                           << b.dtype() << " " << b.shape() << "); convert one with to(dtype)");
}

void check_floating(const Tensor& t, const char* op) {
  ATELIER_CHECK(is_floating(t.dtype()),
                op << ": expected a float32 or float64 tensor, got " << t.dtype() << " " << t.shape());
}

void check_supported(Backend& backend, PrimitiveOp op, DType dtype, const char* what) {
  ATELIER_CHECK(backend.supports(op, dtype), what << ": " << primitive_name(op) << " on " << dtype
                                                  << " is not supported by the " << backend.name() << " backend");
}

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Elu: return "elu";
    case UnaryOp::Pow: return "pow";
    case UnaryOp::Clamp: return "clamp";
  }
  return "unary";
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
  }
  return "binary";
}

const char* reduce_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Mean: return "mean";
    case ReduceOp::Max: return "max";
  }
  return "reduce";
}

}  // namespace

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) ATELIER_CHECK(s >= 0, "empty: negative dimension in shape " << shape);
  ATELIER_CHECK(shape.size() <= static_cast<size_t>(kMaxDims),
                "tensors have at most " << kMaxDims << " dimensions, got shape " << shape);
  auto storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), shape, contiguous_strides(shape), 0, dtype));
}

// --- views ---

Tensor as_strided(const Tensor& t, const Shape& sizes, const Shape& strides, int64_t offset) {
  return Tensor(std::make_shared<TensorImpl>(t.storage(), sizes, strides, offset, t.dtype()));
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      ATELIER_CHECK(infer < 0, op << ": only one dimension can be -1 in " << shape);
      infer = static_cast<int>(i);
    } else {
      ATELIER_CHECK(out[i] >= 0, op << ": invalid dimension " << out[i] << " in " << shape);
      known *= out[i];
    }
  }
  if (infer >= 0) {
    ATELIER_CHECK(known != 0 && numel % known == 0,
                  op << ": cannot infer the -1 in " << shape << " for " << numel << " elements");
    out[infer] = numel / known;
  }
  ATELIER_CHECK(shape_numel(out) == numel, op << ": shape " << shape << " is invalid for " << numel << " elements");
  return out;
}

Tensor view_or_undefined(const Tensor& t, const Shape& shape) {
  if (t.is_contiguous()) return as_strided(t, shape, contiguous_strides(shape), t.offset());
  // A non-contiguous tensor can still be viewed when each new dimension falls inside a run of old dimensions
  // that is itself contiguous (e.g. merging the trailing dims of a sliced batch). Walk both shapes, matching
  // groups with equal element counts.
  const Shape& old_sizes = t.shape();
  const Shape& old_strides = t.strides();
  Shape new_strides(shape.size());
  size_t oi = 0, ni = 0;
  while (ni < shape.size() || oi < old_sizes.size()) {
    // Skip size-1 dims, whose strides do not matter.
    if (ni < shape.size() && shape[ni] == 1) {
      new_strides[ni++] = 1;
      continue;
    }
    if (oi < old_sizes.size() && old_sizes[oi] == 1) {
      ++oi;
      continue;
    }
    if (ni >= shape.size() || oi >= old_sizes.size()) return Tensor();
    // Take old dims [oi, oe) and new dims [ni, ne) with the same element count.
    size_t oe = oi + 1, ne = ni + 1;
    int64_t old_count = old_sizes[oi], new_count = shape[ni];
    while (old_count != new_count) {
      if (old_count < new_count) {
        if (oe >= old_sizes.size()) return Tensor();
        old_count *= old_sizes[oe++];
      } else {
        if (ne >= shape.size()) return Tensor();
        new_count *= shape[ne++];
      }
    }
    // The old group must be contiguous within itself: each non-size-1 dim steps over the next one's extent.
    int64_t inner_stride = 0, inner_extent = 0;
    bool have_inner = false;
    for (size_t k = oe; k-- > oi;) {
      if (old_sizes[k] == 1) continue;
      if (have_inner && old_strides[k] != inner_stride * inner_extent) return Tensor();
      inner_stride = old_strides[k];
      inner_extent = old_sizes[k];
      have_inner = true;
    }
    // The innermost non-size-1 old dim gives the stride of the last new dim.
    int64_t stride = 1;
    for (size_t k = oe; k-- > oi;) {
      if (old_sizes[k] != 1) {
        stride = old_strides[k];
        break;
      }
    }
    for (size_t k = ne; k-- > ni;) {
      new_strides[k] = stride;
      stride *= shape[k];
    }
    oi = oe;
    ni = ne;
  }
  return as_strided(t, shape, new_strides, t.offset());
}

Tensor reshape(const Tensor& t, const Shape& shape) {
  Shape target = infer_shape(shape, t.numel(), "reshape");
  Tensor v = view_or_undefined(t, target);
  if (v.defined()) return v;
  Tensor c = contiguous(t);
  return as_strided(c, target, contiguous_strides(target), 0);
}

Tensor permute(const Tensor& t, const std::vector<int64_t>& dims) {
  ATELIER_CHECK(static_cast<int64_t>(dims.size()) == t.dim(),
                "permute: " << dims.size() << " dims given for a tensor of shape " << t.shape());
  Shape sizes(dims.size()), strides(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int d = normalize_dim(dims[i], t.dim(), "permute");
    ATELIER_CHECK(!seen[d], "permute: dimension " << d << " repeated (tensor of shape " << t.shape() << ")");
    seen[d] = true;
    sizes[i] = t.shape()[d];
    strides[i] = t.strides()[d];
  }
  return as_strided(t, sizes, strides, t.offset());
}

Tensor transpose(const Tensor& t, int64_t dim0, int64_t dim1) {
  int d0 = normalize_dim(dim0, t.dim(), "transpose"), d1 = normalize_dim(dim1, t.dim(), "transpose");
  Shape sizes = t.shape(), strides = t.strides();
  std::swap(sizes[d0], sizes[d1]);
  std::swap(strides[d0], strides[d1]);
  return as_strided(t, sizes, strides, t.offset());
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  int d = normalize_dim(dim, t.dim(), "slice");
  ATELIER_CHECK(step > 0, "slice: step must be positive, got " << step);
  int64_t n = t.shape()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sizes = t.shape(), strides = t.strides();
  sizes[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  return as_strided(t, sizes, strides, t.offset() + start * t.strides()[d]);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  ATELIER_CHECK(shape.size() >= t.shape().size(),
                "expand: cannot expand shape " << t.shape() << " to fewer dimensions " << shape);
  size_t lead = shape.size() - t.shape().size();
  Shape sizes(shape.size()), strides(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      ATELIER_CHECK(shape[i] >= 0, "expand: new leading dimension must be given, got " << shape);
      sizes[i] = shape[i];
      continue;
    }
    int64_t old = t.shape()[i - lead];
    int64_t want = shape[i] == -1 ? old : shape[i];
    ATELIER_CHECK(old == want || old == 1,
                  "expand: shape " << t.shape() << " cannot be expanded to " << shape << " (dimension " << i << ")");
    sizes[i] = want;
    strides[i] = old == want ? t.strides()[i - lead] : 0;
  }
  return as_strided(t, sizes, strides, t.offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  int d = normalize_dim(dim, t.dim(), "squeeze");
  if (t.shape()[d] != 1) return as_strided(t, t.shape(), t.strides(), t.offset());
  Shape sizes = t.shape(), strides = t.strides();
  sizes.erase(sizes.begin() + d);
  strides.erase(strides.begin() + d);
  return as_strided(t, sizes, strides, t.offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  int d = normalize_dim(dim, t.dim() + 1, "unsqueeze");
  Shape sizes = t.shape(), strides = t.strides();
  int64_t stride = d < t.dim() ? t.strides()[d] * t.shape()[d] : 1;
  sizes.insert(sizes.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return as_strided(t, sizes, strides, t.offset());
}

// --- copies and conversions ---

void copy_(const Tensor& dst, const Tensor& src) {
  Shape out = broadcast_shapes(dst.shape(), src.shape(), "copy_");
  ATELIER_CHECK(out == dst.shape(),
                "copy_: source of shape " << src.shape() << " does not broadcast to destination " << dst.shape());
  Tensor source = src;
  if (src.device() != dst.device()) source = to_device(src, dst.device());
  if (source.dtype() != dst.dtype()) {
    // Convert into a fresh tensor of the destination dtype first; the cast kernel is strided too.
    Tensor converted = raw::empty(source.shape(), dst.dtype(), dst.device());
    Backend& b = backend_of(dst);
    check_supported(b, PrimitiveOp::cast, source.dtype(), "copy_");
    b.cast(CastArgs{source.dtype(), dst.dtype(), layout_of(converted), converted.raw_data(), layout_of(source),
                    source.raw_data()});
    source = converted;
  }
  if (dst.numel() > 0) {
    Backend& b = backend_of(dst);
    check_supported(b, PrimitiveOp::copy, dst.dtype(), "copy_");
    b.copy(CopyArgs{dst.dtype(), layout_of(dst), dst.raw_data(), broadcast_layout(source, dst.shape()),
                    source.raw_data()});
  }
  dst.storage()->bump_version();
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  return clone(t);
}

Tensor clone(const Tensor& t) {
  Tensor out = raw::empty(t.shape(), t.dtype(), t.device());
  copy_(out, t);
  return out;
}

Tensor cast(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = raw::empty(t.shape(), dtype, t.device());
  copy_(out, t);
  return out;
}

Tensor to_device(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  Tensor src = contiguous(t);
  Tensor out = raw::empty(t.shape(), t.dtype(), device);
  size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
  if (bytes == 0) return out;
  if (device.is_cpu()) {
    backend_of(src).copy_to_host(out.raw_data(), src.raw_data(), bytes);
  } else if (src.device().is_cpu()) {
    backend_for(device).copy_from_host(out.raw_data(), src.raw_data(), bytes);
  } else {
    // Device to device: through the host (rare; used only to move between GPUs).
    return to_device(to_device(src, Device::cpu()), device);
  }
  return out;
}

void fill_(const Tensor& t, double value) {
  Backend& b = backend_of(t);
  check_supported(b, PrimitiveOp::fill, t.dtype(), "fill_");
  if (t.numel() > 0) b.fill(FillArgs{t.dtype(), layout_of(t), t.raw_data(), value});
  t.storage()->bump_version();
}

// --- elementwise ---

Tensor unary(UnaryOp op, const Tensor& t, double p0, double p1) {
  const char* name = unary_name(op);
  check_floating(t, name);
  Tensor out = raw::empty(t.shape(), t.dtype(), t.device());
  Backend& b = backend_of(t);
  check_supported(b, PrimitiveOp::unary, t.dtype(), name);
  if (t.numel() > 0) b.unary(UnaryArgs{op, t.dtype(), layout_of(t), t.raw_data(), out.raw_data(), p0, p1});
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_same_device(a, b, name);
  check_same_dtype(a, b, name);
  check_floating(a, name);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = raw::empty(out_shape, a.dtype(), a.device());
  Backend& be = backend_of(a);
  check_supported(be, PrimitiveOp::binary, a.dtype(), name);
  if (out.numel() > 0) {
    be.binary(BinaryArgs{op, a.dtype(), broadcast_layout(a, out_shape), a.raw_data(), broadcast_layout(b, out_shape),
                         b.raw_data(), out.raw_data()});
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, double b) { return binary(op, a, scalar_tensor(b, a.dtype(), a.device())); }

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, "compare");
  check_same_dtype(a, b, "compare");
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), "compare");
  Tensor out = raw::empty(out_shape, DType::Bool, a.device());
  Backend& be = backend_of(a);
  check_supported(be, PrimitiveOp::compare, a.dtype(), "compare");
  if (out.numel() > 0) {
    be.compare(CompareArgs{op, a.dtype(), broadcast_layout(a, out_shape), a.raw_data(), broadcast_layout(b, out_shape),
                           b.raw_data(), out.data_ptr<bool>()});
  }
  return out;
}

Tensor compare(CompareOp op, const Tensor& a, double b) {
  return compare(op, a, scalar_tensor(b, a.dtype(), a.device()));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  ATELIER_CHECK(cond.dtype() == DType::Bool,
                "where: condition must be bool, got " << cond.dtype() << " " << cond.shape());
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  check_same_dtype(a, b, "where");
  Shape out_shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = raw::empty(out_shape, a.dtype(), a.device());
  Backend& be = backend_of(a);
  check_supported(be, PrimitiveOp::where, a.dtype(), "where");
  if (out.numel() > 0) {
    be.where(WhereArgs{a.dtype(), broadcast_layout(cond, out_shape), static_cast<const bool*>(cond.raw_data()),
                       broadcast_layout(a, out_shape), a.raw_data(), broadcast_layout(b, out_shape), b.raw_data(),
                       out.raw_data()});
  }
  return out;
}

// --- reductions ---

Tensor reduce(ReduceOp op, const Tensor& t, const std::vector<int64_t>& dims, bool keepdim) {
  const char* name = reduce_name(op);
  std::vector<int> rdims = normalize_dims(dims, t.dim(), name);
  Shape kept_sizes, kept_strides, red_sizes, red_strides, out_shape;
  for (int d = 0; d < t.dim(); ++d) {
    bool reduced = std::find(rdims.begin(), rdims.end(), d) != rdims.end();
    if (reduced) {
      red_sizes.push_back(t.shape()[d]);
      red_strides.push_back(t.strides()[d]);
      if (keepdim) out_shape.push_back(1);
    } else {
      kept_sizes.push_back(t.shape()[d]);
      kept_strides.push_back(t.strides()[d]);
      out_shape.push_back(t.shape()[d]);
    }
  }
  int64_t reduced_count = shape_numel(red_sizes);
  ATELIER_CHECK(reduced_count > 0 || op == ReduceOp::Sum,
                name << ": cannot reduce over an empty range (tensor of shape " << t.shape() << ")");
  Tensor out = raw::empty(out_shape, t.dtype(), t.device());
  Backend& b = backend_of(t);
  check_supported(b, PrimitiveOp::reduce, t.dtype(), name);
  if (out.numel() > 0) {
    b.reduce(ReduceArgs{op, t.dtype(), make_layout(kept_sizes, kept_strides), make_layout(red_sizes, red_strides),
                        t.raw_data(), out.raw_data()});
  }
  return out;
}

Tensor argmax(const Tensor& t, int64_t dim, bool keepdim) {
  int d = normalize_dim(dim, t.dim(), "argmax");
  ATELIER_CHECK(t.shape()[d] > 0, "argmax: dimension " << d << " of shape " << t.shape() << " is empty");
  Shape kept_sizes, kept_strides, out_shape;
  for (int i = 0; i < t.dim(); ++i) {
    if (i == d) {
      if (keepdim) out_shape.push_back(1);
      continue;
    }
    kept_sizes.push_back(t.shape()[i]);
    kept_strides.push_back(t.strides()[i]);
    out_shape.push_back(t.shape()[i]);
  }
  Tensor out = raw::empty(out_shape, DType::Int64, t.device());
  Backend& b = backend_of(t);
  check_supported(b, PrimitiveOp::argmax, t.dtype(), "argmax");
  if (out.numel() > 0) {
    b.argmax(ArgmaxArgs{t.dtype(), make_layout(kept_sizes, kept_strides), t.shape()[d], t.strides()[d], t.raw_data(),
                        static_cast<int64_t*>(out.raw_data())});
  }
  return out;
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  ATELIER_CHECK(broadcast_shapes(shape, t.shape(), "sum_to") == t.shape(),
                "sum_to: shape " << shape << " does not broadcast to " << t.shape());
  // Sum the leading dims that broadcasting added, and the dims where `shape` has 1, keeping them.
  size_t lead = t.shape().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < t.shape().size(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && t.shape()[i] != 1)) dims.push_back(static_cast<int64_t>(i));
  }
  if (dims.empty()) return reshape(t, shape);
  Tensor summed = reduce(ReduceOp::Sum, t, dims, /*keepdim=*/true);
  return reshape(summed, shape);
}

// --- indexing ---

namespace {

// (outer, dim, inner) of a contiguous tensor around dimension d.
void split_around(const Shape& shape, int d, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int i = 0; i < d; ++i) outer *= shape[i];
  for (size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
}

void check_index_shape(const Shape& t_shape, const Tensor& index, int d, const char* op) {
  ATELIER_CHECK(index.dtype() == DType::Int64, op << ": index must be int64, got " << index.dtype());
  ATELIER_CHECK(index.dim() == static_cast<int64_t>(t_shape.size()), op << ": index of shape " << index.shape()
                                                                        << " and tensor of shape " << t_shape
                                                                        << " must have the same number of dimensions");
  for (size_t i = 0; i < t_shape.size(); ++i) {
    ATELIER_CHECK(static_cast<int>(i) == d || index.shape()[i] == t_shape[i],
                  op << ": index of shape " << index.shape() << " must match tensor of shape " << t_shape
                     << " in every dimension except " << d);
  }
}

}  // namespace

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  int d = normalize_dim(dim, t.dim(), "gather");
  check_index_shape(t.shape(), index, d, "gather");
  check_same_device(t, index, "gather");
  Tensor src = contiguous(t), idx = contiguous(index);
  Tensor out = raw::empty(index.shape(), t.dtype(), t.device());
  int64_t outer, inner;
  split_around(t.shape(), d, outer, inner);
  Backend& b = backend_of(t);
  check_supported(b, PrimitiveOp::gather, t.dtype(), "gather");
  if (out.numel() > 0) {
    b.gather(GatherArgs{t.dtype(), outer, t.shape()[d], index.shape()[d], inner, src.raw_data(),
                        static_cast<const int64_t*>(idx.raw_data()), out.raw_data()});
  }
  return out;
}

Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  int d = normalize_dim(dim, static_cast<int64_t>(shape.size()), "scatter_add");
  check_index_shape(shape, index, d, "scatter_add");
  ATELIER_CHECK(src.shape() == index.shape(),
                "scatter_add: source of shape " << src.shape() << " must match index of shape " << index.shape());
  check_same_device(src, index, "scatter_add");
  Tensor out = raw::empty(shape, src.dtype(), src.device());
  fill_(out, 0.0);
  Tensor s = contiguous(src), idx = contiguous(index);
  int64_t outer, inner;
  split_around(shape, d, outer, inner);
  Backend& b = backend_of(src);
  check_supported(b, PrimitiveOp::scatter_add, src.dtype(), "scatter_add");
  if (src.numel() > 0) {
    b.scatter_add(ScatterAddArgs{src.dtype(), outer, shape[d], index.shape()[d], inner, s.raw_data(),
                                 static_cast<const int64_t*>(idx.raw_data()), out.raw_data()});
  }
  return out;
}

// --- linear algebra ---

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
  Backend& be = backend_of(a);
  check_supported(be, PrimitiveOp::gemm, a.dtype(), "matmul");
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
  be.gemm(args);
  return out;
}

// --- convolution and image ops ---

namespace {

// The geometry of x (N, C_in, H, W) conv w (C_out, C_in, kh, kw), with every check that names the op and shapes.
Conv2dGeometry conv_geometry(const Shape& x, const Shape& w, int64_t stride, int64_t padding, const char* op) {
  ATELIER_CHECK(x.size() == 4, op << ": input must be (N, C, H, W), got " << x);
  ATELIER_CHECK(w.size() == 4, op << ": weight must be (C_out, C_in, kh, kw), got " << w);
  ATELIER_CHECK(x[1] == w[1],
                op << ": input " << x << " has " << x[1] << " channels but weight " << w << " expects " << w[1]);
  ATELIER_CHECK(stride >= 1,
                op << ": stride must be positive, got " << stride << " (input " << x << ", weight " << w << ")");
  ATELIER_CHECK(padding >= 0,
                op << ": padding must be non-negative, got " << padding << " (input " << x << ", weight " << w << ")");
  ATELIER_CHECK(w[0] > 0 && w[1] > 0 && w[2] > 0 && w[3] > 0, op << ": weight " << w << " has an empty dimension");
  const int64_t ph = x[2] + 2 * padding, pw = x[3] + 2 * padding;
  ATELIER_CHECK(w[2] <= ph && w[3] <= pw, op << ": kernel " << w[2] << "x" << w[3]
                                             << " is larger than the padded input " << ph << "x" << pw << " (input "
                                             << x << ", weight " << w << ", padding " << padding << ")");
  Conv2dGeometry g{};
  g.n = x[0];
  g.c_in = x[1];
  g.h = x[2];
  g.w = x[3];
  g.c_out = w[0];
  g.kh = w[2];
  g.kw = w[3];
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = padding;
  g.h_out = (ph - g.kh) / stride + 1;
  g.w_out = (pw - g.kw) / stride + 1;
  return g;
}

void check_conv_operands(const Tensor& a, const Tensor& b, const char* op) {
  check_same_device(a, b, op);
  check_same_dtype(a, b, op);
  check_floating(a, op);
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding) {
  Conv2dGeometry g = conv_geometry(x.shape(), weight.shape(), stride, padding, "conv2d");
  check_conv_operands(x, weight, "conv2d");
  if (bias.defined()) {
    ATELIER_CHECK(bias.dim() == 1 && bias.size(0) == g.c_out, "conv2d: bias of shape "
                                                                  << bias.shape() << " for weight " << weight.shape()
                                                                  << " (expected [" << g.c_out << "])");
    check_conv_operands(x, bias, "conv2d");
  }
  Tensor xc = contiguous(x), wc = contiguous(weight), bc = bias.defined() ? contiguous(bias) : Tensor();
  Tensor out = raw::empty({g.n, g.c_out, g.h_out, g.w_out}, x.dtype(), x.device());
  Backend& b = backend_of(x);
  check_supported(b, PrimitiveOp::conv2d_fwd, x.dtype(), "conv2d");
  if (out.numel() > 0) {
    b.conv2d_fwd(Conv2dForwardArgs{x.dtype(), g, xc.raw_data(), wc.raw_data(), bc.defined() ? bc.raw_data() : nullptr,
                                   out.raw_data()});
  }
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape, int64_t stride,
                             int64_t padding) {
  const char* op = "conv2d_backward_input";
  Conv2dGeometry g = conv_geometry(input_shape, weight.shape(), stride, padding, op);
  const Shape expected{g.n, g.c_out, g.h_out, g.w_out};
  ATELIER_CHECK(grad_out.shape() == expected, op << ": gradient of shape " << grad_out.shape() << " for input "
                                                 << input_shape << " and weight " << weight.shape() << " (expected "
                                                 << expected << ")");
  check_conv_operands(grad_out, weight, op);
  Tensor go = contiguous(grad_out), wc = contiguous(weight);
  Tensor grad_in = raw::empty(input_shape, grad_out.dtype(), grad_out.device());
  Backend& b = backend_of(grad_out);
  check_supported(b, PrimitiveOp::conv2d_bwd_input, grad_out.dtype(), op);
  if (grad_in.numel() > 0) {
    b.conv2d_bwd_input(Conv2dBackwardInputArgs{grad_out.dtype(), g, go.raw_data(), wc.raw_data(), grad_in.raw_data()});
  }
  return grad_in;
}

Conv2dWeightGrads conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape,
                                         bool with_bias, int64_t stride, int64_t padding) {
  const char* op = "conv2d_backward_weight";
  Conv2dGeometry g = conv_geometry(x.shape(), weight_shape, stride, padding, op);
  const Shape expected{g.n, g.c_out, g.h_out, g.w_out};
  ATELIER_CHECK(grad_out.shape() == expected, op << ": gradient of shape " << grad_out.shape() << " for input "
                                                 << x.shape() << " and weight " << weight_shape << " (expected "
                                                 << expected << ")");
  check_conv_operands(x, grad_out, op);
  Tensor xc = contiguous(x), go = contiguous(grad_out);
  Conv2dWeightGrads grads;
  grads.weight = raw::empty(weight_shape, x.dtype(), x.device());
  if (with_bias) grads.bias = raw::empty({g.c_out}, x.dtype(), x.device());
  Backend& b = backend_of(x);
  check_supported(b, PrimitiveOp::conv2d_bwd_weight, x.dtype(), op);
  b.conv2d_bwd_weight(Conv2dBackwardWeightArgs{x.dtype(), g, xc.raw_data(), go.raw_data(), grads.weight.raw_data(),
                                               with_bias ? grads.bias.raw_data() : nullptr});
  return grads;
}

namespace {

UpsampleNearestArgs upsample_args(const Shape& small, int64_t scale, DType dtype) {
  UpsampleNearestArgs a{};
  a.dtype = dtype;
  a.n = small[0];
  a.c = small[1];
  a.h = small[2];
  a.w = small[3];
  a.scale_h = a.scale_w = scale;
  return a;
}

}  // namespace

Tensor upsample_nearest2d(const Tensor& x, int64_t scale) {
  ATELIER_CHECK(x.dim() == 4, "upsample_nearest2d: input must be (N, C, H, W), got " << x.shape());
  ATELIER_CHECK(scale >= 1, "upsample_nearest2d: scale must be >= 1, got " << scale << " (input " << x.shape() << ")");
  check_floating(x, "upsample_nearest2d");
  Tensor xc = contiguous(x);
  Tensor out = raw::empty({x.size(0), x.size(1), x.size(2) * scale, x.size(3) * scale}, x.dtype(), x.device());
  Backend& b = backend_of(x);
  check_supported(b, PrimitiveOp::upsample_nearest_fwd, x.dtype(), "upsample_nearest2d");
  UpsampleNearestArgs a = upsample_args(x.shape(), scale, x.dtype());
  a.src = xc.raw_data();
  a.dst = out.raw_data();
  if (out.numel() > 0) b.upsample_nearest_fwd(a);
  return out;
}

Tensor upsample_nearest2d_backward(const Tensor& grad_out, int64_t scale) {
  const char* op = "upsample_nearest2d_backward";
  ATELIER_CHECK(grad_out.dim() == 4, op << ": gradient must be (N, C, H, W), got " << grad_out.shape());
  ATELIER_CHECK(scale >= 1, op << ": scale must be >= 1, got " << scale);
  ATELIER_CHECK(grad_out.size(2) % scale == 0 && grad_out.size(3) % scale == 0,
                op << ": gradient " << grad_out.shape() << " is not a multiple of the scale " << scale);
  check_floating(grad_out, op);
  Tensor go = contiguous(grad_out);
  Tensor out = raw::empty({go.size(0), go.size(1), go.size(2) / scale, go.size(3) / scale}, go.dtype(), go.device());
  Backend& b = backend_of(go);
  check_supported(b, PrimitiveOp::upsample_nearest_bwd, go.dtype(), op);
  UpsampleNearestArgs a = upsample_args(out.shape(), scale, go.dtype());
  a.src = go.raw_data();
  a.dst = out.raw_data();
  if (out.numel() > 0) b.upsample_nearest_bwd(a);
  return out;
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  ATELIER_CHECK(!tensors.empty(), "cat: expected at least one tensor");
  const Tensor& first = tensors[0];
  ATELIER_CHECK(first.dim() >= 1, "cat: cannot concatenate 0-d tensors (tensor 0 has shape " << first.shape() << ")");
  const int d = normalize_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_same_device(first, t, "cat");
    check_same_dtype(first, t, "cat");
    bool match = t.dim() == first.dim();
    for (int k = 0; match && k < first.dim(); ++k) match = k == d || t.shape()[k] == first.shape()[k];
    ATELIER_CHECK(match, "cat: tensor " << i << " has shape " << t.shape() << " but tensor 0 has shape "
                                        << first.shape() << "; they must match except in dimension " << d);
    out_shape[d] += t.shape()[d];
  }
  Tensor out = raw::empty(out_shape, first.dtype(), first.device());
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    const int64_t size = t.shape()[d];
    if (size > 0) copy_(slice(out, d, offset, offset + size, 1), t);
    offset += size;
  }
  return out;
}

}  // namespace atelier::raw

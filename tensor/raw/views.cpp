// Views: new TensorImpls over the same storage (sizes, strides, offset); no data moves.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "tensor/creation.h"
#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

Tensor empty(const Shape& shape, DType dtype, Device device) {
  ATELIER_CHECK(shape.size() <= static_cast<size_t>(kMaxDims),
                "tensors have at most " << kMaxDims << " dimensions, got shape " << shape);
  // shape_bytes refuses negative sizes and element or byte counts beyond int64, naming the shape.
  auto storage = std::make_shared<Storage>(static_cast<size_t>(shape_bytes(shape, dtype)), device);
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), shape, contiguous_strides(shape), 0, dtype));
}

namespace {

// Every view is made here, so this is where a malformed layout is stopped, whatever op computed it: sizes must
// be non-negative with an int64 element count, and every element the view can reach (offset + sum of
// index * stride) must lie inside the storage. Then no kernel can read or write outside its buffer.
void check_view(const Tensor& t, const Shape& sizes, const Shape& strides, int64_t offset) {
  ATELIER_CHECK(sizes.size() == strides.size(),
                "as_strided: " << sizes.size() << " sizes " << sizes << " but " << strides.size() << " strides");
  ATELIER_CHECK(sizes.size() <= static_cast<size_t>(kMaxDims),
                "tensors have at most " << kMaxDims << " dimensions, got shape " << sizes);
  if (shape_numel(sizes) == 0) return;
  const auto itemsize = static_cast<int64_t>(dtype_size(t.dtype()));
  const int64_t capacity = static_cast<int64_t>(t.storage()->bytes()) / itemsize;
  int64_t lo = offset, hi = offset;
  bool fits = true;
  for (size_t d = 0; d < sizes.size() && fits; ++d) {
    int64_t extent = 0;
    fits = mul_fits(sizes[d] - 1, strides[d], extent) &&
           (extent >= 0 ? add_fits(hi, extent, hi) : add_fits(lo, extent, lo));
  }
  ATELIER_CHECK(fits && lo >= 0 && hi < capacity,
                "as_strided: a view of shape " << sizes << " with strides " << strides << " and offset " << offset
                                               << " reaches outside its storage of " << capacity << " elements");
}

}  // namespace

bool detail::may_share_memory(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage() || a.numel() == 0 || b.numel() == 0) return false;
  // The first and last element each can reach (as_strided has checked that both lie inside the storage).
  const auto range = [](const Tensor& t) {
    int64_t first = t.offset(), last = t.offset();
    for (int64_t d = 0; d < t.dim(); ++d) (t.strides()[d] < 0 ? first : last) += (t.shape()[d] - 1) * t.strides()[d];
    return std::pair<int64_t, int64_t>{first, last};
  };
  const auto [a_first, a_last] = range(a);
  const auto [b_first, b_last] = range(b);
  return a_first <= b_last && b_first <= a_last;
}

void detail::check_no_internal_overlap(const Tensor& dst, const char* op) {
  // Sorted by stride, each dimension must step past everything the smaller-stride dimensions reach; then no
  // two indices meet. A view that fails this (stride 0, or strides from as_strided that interleave) is refused.
  // A 0-element tensor writes nothing (and its sizes may be huge); otherwise as_strided has checked that the
  // extents below fit in int64.
  if (dst.numel() == 0) return;
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of the dimensions that step
  for (int64_t d = 0; d < dst.dim(); ++d) {
    if (dst.shape()[d] > 1) dims.emplace_back(std::abs(dst.strides()[d]), dst.shape()[d]);
  }
  std::sort(dims.begin(), dims.end());
  int64_t reach = 0;
  for (const auto& [stride, size] : dims) {
    ATELIER_CHECK(stride > reach, op << ": cannot write into a tensor of shape " << dst.shape() << " with strides "
                                     << dst.strides()
                                     << ": several of its elements refer to the same memory location (an expanded "
                                        "or broadcast view); write into a clone() or contiguous() copy instead");
    reach += (size - 1) * stride;
  }
}

Tensor as_strided(const Tensor& t, const Shape& sizes, const Shape& strides, int64_t offset) {
  check_view(t, sizes, strides, offset);
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
      ATELIER_CHECK(mul_fits(known, out[i], known),
                    op << ": shape " << shape << " has too many elements (more than 2^63 - 1)");
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
  // ceil((end - start) / step) without forming end - start + step, which overflows for a huge step.
  sizes[d] = end == start ? 0 : (end - start - 1) / step + 1;
  // A dimension of 0 or 1 elements never steps, so its stride need not (and for a huge step could not) be
  // multiplied.
  if (sizes[d] > 1) {
    ATELIER_CHECK(mul_fits(strides[d], step, strides[d]),
                  "slice: step " << step << " times stride " << t.strides()[d] << " of dimension " << d
                                 << " does not fit in 64 bits (shape " << t.shape() << ")");
  }
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
    ATELIER_CHECK(shape[i] >= -1, "expand: size " << shape[i] << " in " << shape << " (dimension " << i
                                                  << ") is negative; only -1 (keep the size) is allowed");
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

}  // namespace atelier::raw

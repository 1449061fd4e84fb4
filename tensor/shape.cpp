#include "tensor/shape.h"

#include <algorithm>
#include <sstream>

#include "backends/error.h"

namespace atelier {

int64_t shape_numel(const Shape& shape) {
  bool empty = false;
  for (int64_t s : shape) {
    ATELIER_CHECK(s >= 0, "shape " << shape << " has a negative size (" << s << ")");
    empty = empty || s == 0;
  }
  if (empty) return 0;
  int64_t n = 1;
  for (int64_t s : shape) {
    ATELIER_CHECK(mul_fits(n, s, n), "shape " << shape
                                              << " has too many elements: the product of its sizes does "
                                                 "not fit in a 64-bit count (at most 2^63 - 1)");
  }
  return n;
}

int64_t shape_bytes(const Shape& shape, DType dtype) {
  int64_t bytes = 0;
  ATELIER_CHECK(mul_fits(shape_numel(shape), static_cast<int64_t>(dtype_size(dtype)), bytes),
                "a " << dtype << " tensor of shape " << shape << " is too large: its " << shape_numel(shape)
                     << " elements of " << dtype_size(dtype) << " bytes do not fit in a 64-bit byte count");
  return bytes;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    if (i == 0) break;  // the total product is not a stride
    ATELIER_CHECK(mul_fits(stride, std::max<int64_t>(shape[i], 1), stride),
                  "shape " << shape << " is too large: its strides do not fit in a 64-bit element count");
  }
  return strides;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    // Align from the right: missing leading dims count as 1.
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    ATELIER_CHECK(da == db || da == 1 || db == 1, op << ": shapes " << a << " and " << b
                                                     << " cannot be broadcast (dimension " << i << ": " << da << " vs "
                                                     << db << ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int normalize_dim(int64_t dim, int64_t ndim, const char* op) {
  ATELIER_CHECK(dim >= -ndim && dim < ndim,
                op << ": dimension " << dim << " is out of range for a tensor with " << ndim << " dimensions");
  return static_cast<int>(dim < 0 ? dim + ndim : dim);
}

std::vector<int> normalize_dims(const std::vector<int64_t>& dims, int64_t ndim, const char* op) {
  std::vector<int> out;
  if (dims.empty()) {
    for (int d = 0; d < ndim; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(normalize_dim(d, ndim, op));
  std::sort(out.begin(), out.end());
  ATELIER_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op << ": a dimension is repeated in the list");
  return out;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Shape& shape) { return os << shape_str(shape); }

std::ostream& operator<<(std::ostream& os, const HW& hw) {
  if (hw.h == hw.w) return os << hw.h;
  return os << "(" << hw.h << ", " << hw.w << ")";
}

Layout make_layout(const Shape& sizes, const Shape& strides) {
  ATELIER_CHECK(sizes.size() <= static_cast<size_t>(kMaxDims),
                "tensors have at most " << kMaxDims << " dimensions, got shape " << sizes);
  Layout layout;
  layout.ndim = static_cast<int>(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    layout.sizes[i] = sizes[i];
    layout.strides[i] = strides[i];
  }
  return layout;
}

}  // namespace atelier

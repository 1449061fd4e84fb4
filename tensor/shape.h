// Shapes and strides: the small integer arithmetic every op needs (numel, contiguous strides, broadcasting,
// negative-dim wrapping), kept in one place so every op reports shape errors the same way.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "backends/args.h"

namespace atelier {

using Shape = std::vector<int64_t>;

// Overflow-checked size arithmetic: false when a * b (a + b) does not fit in int64 (`out` is then unspecified).
// Every product or sum of sizes, strides or byte counts goes through these (or the functions below).
inline bool mul_fits(int64_t a, int64_t b, int64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
inline bool add_fits(int64_t a, int64_t b, int64_t& out) { return !__builtin_add_overflow(a, b, &out); }

// The number of elements. Throws, naming the shape, when a size is negative or the product does not fit in
// int64 (a shape with a 0 size has 0 elements, whatever its other sizes).
int64_t shape_numel(const Shape& shape);
// shape_numel(shape) * itemsize, the bytes of a contiguous tensor; throws naming the shape and dtype when that
// does not fit in int64 (byte offsets are int64 everywhere).
int64_t shape_bytes(const Shape& shape, DType dtype);
// Row-major strides in elements: the last dimension has stride 1. Throws naming the shape when a stride does not
// fit in int64 (only possible for a 0-element shape, whose product shape_numel does not check).
Shape contiguous_strides(const Shape& shape);
// NumPy broadcasting of two shapes; throws naming `op` and both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Wraps a possibly negative dimension into [0, ndim); throws naming `op` when out of range.
int normalize_dim(int64_t dim, int64_t ndim, const char* op);
// Normalises a list of dims (empty = every dim), sorted, rejecting duplicates.
std::vector<int> normalize_dims(const std::vector<int64_t>& dims, int64_t ndim, const char* op);

// "[2, 3, 4]"
std::string shape_str(const Shape& shape);
std::ostream& operator<<(std::ostream& os, const Shape& shape);

// A convolution's kernel size, stride or padding in its two directions: one value for both (conv2d(x, w, b, 2, 1))
// or {height, width} (conv2d(x, w, b, {1, 2}, {1, 0})), as PyTorch takes an int or a pair.
struct HW {
  int64_t h, w;
  constexpr HW(int64_t both) : h(both), w(both) {}  // implicit: a single value means both directions
  constexpr HW(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  bool operator==(const HW&) const = default;
};
// "2" when both directions agree, else "(1, 2)" (height, width).
std::ostream& operator<<(std::ostream& os, const HW& hw);

// A backend Layout from sizes and strides (throws when there are more than kMaxDims dimensions).
Layout make_layout(const Shape& sizes, const Shape& strides);

}  // namespace atelier

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

int64_t shape_numel(const Shape& shape);
// Row-major strides in elements: the last dimension has stride 1.
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

// A backend Layout from sizes and strides (throws when there are more than kMaxDims dimensions).
Layout make_layout(const Shape& sizes, const Shape& strides);

}  // namespace atelier

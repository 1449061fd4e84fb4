// Joining and splitting along one dimension: cat (a raw copy into one output, with a slicing backward), stack (a cat
// of the inputs each with a new dim of size 1), split (views of the input, one node whose backward is one cat) and
// chunk (a split).
#include <algorithm>

#include "autograd/functions.h"
#include "autograd/record.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/raw_ops.h"

namespace atelier {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = raw::cat(tensors, dim);
  if (!should_record(tensors)) return out;
  // The gradient of each input is its slice of the output's gradient (a view; the engine copies if needed).
  const int d = normalize_dim(dim, tensors[0].dim(), "cat");
  std::vector<int64_t> sizes;
  for (const Tensor& t : tensors) sizes.push_back(t.shape()[d]);
  return record("cat", out, tensors, [d, sizes](const auto& g, const auto& needs) {
    std::vector<Tensor> grads(sizes.size());
    int64_t offset = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (needs[i]) grads[i] = raw::slice(g[0], d, offset, offset + sizes[i], 1);
      offset += sizes[i];
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  ATELIER_CHECK(!tensors.empty(), "stack: needs at least one tensor");
  for (size_t i = 1; i < tensors.size(); ++i) {
    ATELIER_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: every tensor must have one shape; tensor 0 is "
                                                                << tensors[0].shape() << ", tensor " << i << " is "
                                                                << tensors[i].shape());
  }
  // The new dim may also come after the last one: normalised against dim() + 1.
  const int d = normalize_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> pieces;
  for (const Tensor& t : tensors) pieces.push_back(unsqueeze(t, d));
  return cat(pieces, d);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  ATELIER_CHECK(split_size >= 1,
                "split: split_size must be positive, got " << split_size << " (tensor of shape " << x.shape() << ")");
  const int d = normalize_dim(dim, x.dim(), "split");
  const int64_t size = x.shape()[d];
  std::vector<Tensor> pieces;  // views of x
  for (int64_t start = 0; start < size || (size == 0 && pieces.empty()); start += split_size) {
    pieces.push_back(raw::slice(x, d, start, std::min(size, start + split_size), 1));
  }
  if (!should_record({x})) return pieces;
  // One node for all the pieces: x's gradient is their gradients joined by one cat, where a slice per piece would
  // zero-fill x's whole shape for each, copy its gradient in and add them up (BEGAN's D step splits its (2,) loss
  // vector so: three kernels fewer per step). A piece no gradient reached contributes zeros.
  std::vector<Shape> shapes;
  for (const Tensor& p : pieces) shapes.push_back(p.shape());
  return record("split", pieces, {x}, [d, shapes, dt = x.dtype()](const auto& g, const auto&) {
    // The engine runs a node only when some gradient reached it, so there is one to take the device from.
    const Tensor& reached = *std::find_if(g.begin(), g.end(), [](const Tensor& t) { return t.defined(); });
    std::vector<Tensor> parts;
    for (size_t i = 0; i < shapes.size(); ++i) {
      parts.push_back(g[i].defined() ? g[i] : zeros(shapes[i], dt, reached.device()));
    }
    return std::vector<Tensor>{raw::cat(parts, d)};
  });
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  ATELIER_CHECK(chunks >= 1,
                "chunk: chunks must be positive, got " << chunks << " (tensor of shape " << x.shape() << ")");
  const int d = normalize_dim(dim, x.dim(), "chunk");
  // As PyTorch: pieces of ceil(size / chunks), so there may be fewer than `chunks` of them.
  const int64_t size = x.shape()[d];
  return split(x, std::max<int64_t>(1, (size + chunks - 1) / chunks), d);
}

}  // namespace atelier

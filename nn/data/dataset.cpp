// Dataset's default batching (stacking examples) and TensorDataset, whose batches are row copies.
#include "nn/data/dataset.h"

#include <cstring>

#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier::nn {
namespace {

// A contiguous CPU version of t (t itself when it already is one).
Tensor host_contiguous(const Tensor& t) {
  return raw::contiguous(t.device().is_cpu() ? t : raw::to_device(t, Device::cpu()));
}

Shape with_batch_dim(int64_t batch, const Shape& row) {
  Shape s{batch};
  s.insert(s.end(), row.begin(), row.end());
  return s;
}

// Copies rows `indices` of the contiguous CPU tensor `src` (N, ...) into a new tensor (B, ...).
Tensor gather_rows(const Tensor& src, const std::vector<int64_t>& indices) {
  Shape row_shape(src.shape().begin() + 1, src.shape().end());
  Tensor out = raw::empty(with_batch_dim(static_cast<int64_t>(indices.size()), row_shape), src.dtype(), Device::cpu());
  const size_t row_bytes = static_cast<size_t>(shape_numel(row_shape)) * dtype_size(src.dtype());
  const char* from = static_cast<const char*>(src.raw_data());
  char* to = static_cast<char*>(out.raw_data());
  for (size_t b = 0; b < indices.size(); ++b) {
    std::memcpy(to + b * row_bytes, from + static_cast<size_t>(indices[b]) * row_bytes, row_bytes);
  }
  return out;
}

void check_indices(const std::vector<int64_t>& indices, int64_t size, const char* who) {
  ATELIER_CHECK(!indices.empty(), who << ": empty batch");
  for (int64_t i : indices) {
    ATELIER_CHECK(i >= 0 && i < size, who << ": index " << i << " out of range for a data set of " << size);
  }
}

}  // namespace

Batch Dataset::get_batch(const std::vector<int64_t>& indices) const {
  check_indices(indices, size(), "Dataset::get_batch");
  const int64_t batch = static_cast<int64_t>(indices.size());
  Tensor data, target;
  size_t data_bytes = 0, target_bytes = 0;
  for (int64_t b = 0; b < batch; ++b) {
    Example ex = get(indices[static_cast<size_t>(b)]);
    ATELIER_CHECK(ex.data.defined(),
                  "Dataset::get_batch: example " << indices[static_cast<size_t>(b)] << " has no data");
    Tensor d = host_contiguous(ex.data);
    if (b == 0) {
      data = raw::empty(with_batch_dim(batch, d.shape()), d.dtype(), Device::cpu());
      data_bytes = static_cast<size_t>(d.numel()) * dtype_size(d.dtype());
    }
    ATELIER_CHECK(d.shape() == Shape(data.shape().begin() + 1, data.shape().end()) && d.dtype() == data.dtype(),
                  "Dataset::get_batch: example " << indices[static_cast<size_t>(b)] << " has data " << d.shape() << " "
                                                 << d.dtype() << ", but the batch's first example has "
                                                 << Shape(data.shape().begin() + 1, data.shape().end()) << " "
                                                 << data.dtype());
    std::memcpy(static_cast<char*>(data.raw_data()) + static_cast<size_t>(b) * data_bytes, d.raw_data(), data_bytes);

    ATELIER_CHECK(ex.target.defined() == (b == 0 ? ex.target.defined() : target.defined()),
                  "Dataset::get_batch: example " << indices[static_cast<size_t>(b)]
                                                 << (ex.target.defined() ? " has" : " has no")
                                                 << " target, unlike the batch's first example");
    if (!ex.target.defined()) continue;
    Tensor t = host_contiguous(ex.target);
    if (b == 0) {
      target = raw::empty(with_batch_dim(batch, t.shape()), t.dtype(), Device::cpu());
      target_bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    }
    ATELIER_CHECK(t.shape() == Shape(target.shape().begin() + 1, target.shape().end()) && t.dtype() == target.dtype(),
                  "Dataset::get_batch: example " << indices[static_cast<size_t>(b)] << " has target " << t.shape()
                                                 << " " << t.dtype() << ", unlike the batch's first example");
    std::memcpy(static_cast<char*>(target.raw_data()) + static_cast<size_t>(b) * target_bytes, t.raw_data(),
                target_bytes);
  }
  return Batch{data, target, 0};
}

Batch Dataset::batch_for_epoch(int64_t /*epoch*/, const std::vector<int64_t>& indices) const {
  return get_batch(indices);
}

TensorDataset::TensorDataset(const Tensor& data, const Tensor& targets) {
  ATELIER_CHECK(data.defined() && data.dim() >= 1, "TensorDataset: data must have a first (example) dimension, got "
                                                       << (data.defined() ? data.shape() : Shape{})
                                                       << (data.defined() ? "" : " (undefined)"));
  data_ = host_contiguous(data.detach());
  if (targets.defined()) {
    ATELIER_CHECK(targets.dim() >= 1 && targets.size(0) == data.size(0),
                  "TensorDataset: targets " << targets.shape() << " do not match data " << data.shape()
                                            << " in the first (example) dimension");
    targets_ = host_contiguous(targets.detach());
  }
}

Example TensorDataset::get(int64_t i) const {
  ATELIER_CHECK(i >= 0 && i < size(),
                "TensorDataset::get: index " << i << " out of range for a data set of " << size());
  // A copy, not a view: writing to an example must not change the data set.
  Example ex;
  ex.data = raw::squeeze(gather_rows(data_, {i}), 0);
  if (targets_.defined()) ex.target = raw::squeeze(gather_rows(targets_, {i}), 0);
  return ex;
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  check_indices(indices, size(), "TensorDataset::get_batch");
  Batch batch;
  batch.data = gather_rows(data_, indices);
  if (targets_.defined()) batch.target = gather_rows(targets_, indices);
  return batch;
}

}  // namespace atelier::nn

// Data sets: a Dataset answers "how many examples" and "example i"; a DataLoader (nn/data/dataloader.h) turns
// one into shuffled batches. TensorDataset serves examples already in memory (Fashion-MNIST, synthetic data).
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace atelier::nn {

// One example: its data (e.g. an image (C, H, W)) and its target (e.g. a 0-d int64 label; undefined when the set
// has no targets, as for a GAN's images).
struct Example {
  Tensor data;
  Tensor target;
};

// A batch of examples stacked along a new first dimension: data (B, ...), target (B, ...) or undefined.
struct Batch {
  Tensor data;
  Tensor target;
  int64_t index = 0;  // which batch of its epoch this is (0-based)
};

// What a data set must provide. get() and get_batch() may be called from the DataLoader's prefetch thread while
// the training thread runs, so they must not change shared state (they are const) and must be thread-safe.
class Dataset {
 public:
  virtual ~Dataset() = default;
  // Number of examples.
  virtual int64_t size() const = 0;
  // Example i, 0 <= i < size(), as CPU tensors.
  virtual Example get(int64_t i) const = 0;
  // The examples at `indices`, stacked into CPU tensors (B, ...). The default calls get() for each index and
  // copies the results into one tensor, checking that all have the same shape and dtype, and that either every
  // example has a target or none has. Override it when rows can be copied faster (TensorDataset does).
  virtual Batch get_batch(const std::vector<int64_t>& indices) const;
  // The same, for a DataLoader in epoch `epoch` (>= 0): what a set whose examples vary by epoch (a random flip
  // keyed by the epoch) overrides. The default ignores the epoch and calls get_batch().
  virtual Batch batch_for_epoch(int64_t epoch, const std::vector<int64_t>& indices) const;
};

// Examples held in memory: row i of `data` (N, ...) and, when given, element/row i of `targets` (N, ...).
// get_batch() copies the selected rows directly (one memcpy per row), the fast path for in-memory sets.
class TensorDataset : public Dataset {
 public:
  // Requires: data defined with at least one dimension; targets undefined or with targets.size(0) == data.size(0).
  // The tensors are moved to the CPU and made contiguous once, here.
  explicit TensorDataset(const Tensor& data, const Tensor& targets = Tensor());

  int64_t size() const override { return data_.size(0); }
  Example get(int64_t i) const override;
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  const Tensor& data() const { return data_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor data_;     // (N, ...), contiguous, CPU
  Tensor targets_;  // (N, ...), contiguous, CPU, or undefined
};

}  // namespace atelier::nn

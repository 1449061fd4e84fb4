// DataLoader: a Dataset cut into batches, shuffled per epoch, built ahead of time by a prefetch thread.
//
//   DataLoader loader(std::make_shared<TensorDataset>(images, labels), {.batch_size = 16, .shuffle = true});
//   for (int64_t e = 0; e < epochs; ++e)
//     for (Batch& b : loader.epoch(e)) train_step(b.data.to(device), b.target.to(device));
//
// Reproducible and resumable: epoch e's order is a permutation drawn from counter-based Philox keyed by
// (seed, e), never from a running generator, so it does not depend on what ran before, on prefetching, or on
// timing. `loader.epoch(e, i)` starts at batch i and yields exactly the batches i, i+1, ... of an uninterrupted
// epoch e: a trainer resumed from a checkpoint taken after batch i-1 sees the same data as if it had never stopped.
#pragma once

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "nn/data/dataset.h"

namespace atelier::nn {

struct DataLoaderOptions {
  int64_t batch_size = 1;  // >= 1
  bool shuffle = false;    // false: examples in index order every epoch
  bool drop_last = false;  // drop a last batch smaller than batch_size
  uint64_t seed = 0;       // with the epoch number, keys the shuffle
  int64_t prefetch = 2;    // batches a background thread builds ahead (0: each batch is built inside next())
};

// One pass over the data (or its tail, from a start batch). Move-only. Destroying it mid-epoch stops the prefetch
// thread cleanly: the thread finishes the batch it is building (if any) and exits; nothing hangs.
class Epoch {
 public:
  Epoch(Epoch&&) noexcept;
  Epoch& operator=(Epoch&&) noexcept;
  Epoch(const Epoch&) = delete;
  Epoch& operator=(const Epoch&) = delete;
  ~Epoch();

  // The next batch (its `index` is its position in the full epoch), or nullopt after the last. An exception
  // thrown while building a batch (in the prefetch thread or here) is rethrown by the call that would have
  // returned that batch, and by every later call.
  std::optional<Batch> next();

  // Range-for support: an input iterator over next().
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = Batch*;
    using reference = Batch&;

    Iterator() = default;
    Batch& operator*() { return *current_; }
    Batch* operator->() { return &*current_; }
    Iterator& operator++() {
      current_ = epoch_->next();
      return *this;
    }
    bool operator==(const Iterator& o) const { return current_.has_value() == o.current_.has_value(); }

   private:
    friend class Epoch;
    explicit Iterator(Epoch* epoch) : epoch_(epoch), current_(epoch->next()) {}
    Epoch* epoch_ = nullptr;
    std::optional<Batch> current_;
  };
  Iterator begin() { return Iterator(this); }
  Iterator end() { return Iterator(); }

 private:
  friend class DataLoader;
  struct State;
  explicit Epoch(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

class DataLoader {
 public:
  // Requires: a non-null dataset with at least one example; batch_size >= 1; prefetch >= 0.
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options = {});

  // Batches per epoch: ceil(size / batch_size), or floor with drop_last.
  int64_t num_batches() const;
  const DataLoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }

  // Epoch e's order of example indices: 0 .. size-1 without shuffle, else a Fisher-Yates permutation whose draws
  // are Philox words keyed by (seed, stream = a shuffle tag ^ e). The same (seed, e) always gives the same order.
  std::vector<int64_t> order(int64_t epoch) const;

  // Batches start_batch .. num_batches()-1 of epoch `epoch` (epoch >= 0, 0 <= start_batch <= num_batches()).
  // The loader may be destroyed before the Epoch: the Epoch holds the dataset.
  Epoch epoch(int64_t epoch, int64_t start_batch = 0) const;

 private:
  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
};

}  // namespace atelier::nn

// `--data synthetic`: a small procedural data set for tests and smoke runs. Image i is a -1 background with 1 to 3
// filled ellipses and rectangles painted in turn (later ones cover earlier ones), each at a random place and
// size, in a random grey level or (with several channels) sometimes a random colour. Every number comes from
// Philox keyed by (seed, i), so image i is the same whatever else was drawn, on any thread, in any order.
#pragma once

#include <cstdint>

#include "nn/data/dataset.h"

namespace atelier::began {

struct SyntheticOptions {
  int64_t size = 10000;     // number of images, >= 1
  int64_t image_size = 32;  // side in pixels, >= 4 (any size; BEGAN's model wants 8 * 2^k)
  int64_t channels = 1;     // >= 1
  uint64_t seed = 0;
};

// WHAT THIS OBJECT REPRESENTS
//   options.size images (channels, image_size, image_size), float32 in [-1, 1], with no targets. get() only
//   reads the options, so it is thread-safe (the DataLoader's prefetch thread calls it).
class SyntheticShapes : public nn::Dataset {
 public:
  // Throws atelier::Error naming the field when an option is out of range.
  explicit SyntheticShapes(const SyntheticOptions& options);

  int64_t size() const override { return options_.size; }
  // Image i: data (C, S, S), target undefined. Requires 0 <= i < size().
  nn::Example get(int64_t i) const override;
  const SyntheticOptions& options() const { return options_; }

 private:
  SyntheticOptions options_;
};

}  // namespace atelier::began

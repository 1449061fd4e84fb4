// The synthetic shapes data set (began/data/synthetic.h): each image is painted on the host from a private
// Philox counter range, so get(i) is a pure function of (seed, i).
#include "began/data/synthetic.h"

#include <algorithm>
#include <vector>

#include "backends/error.h"
#include "backends/philox.h"
#include "tensor/creation.h"

namespace atelier::began {
namespace {

// Image i draws from stream kSyntheticStreamTag + i, blocks 0, 1, 2 ...: far from stream 0 (the default
// generator), the DataLoader's shuffle streams and the latent streams.
constexpr uint64_t kSyntheticStreamTag = 0x5359485448000000ull;  // "SYNTH"

// Uniform numbers in order from one image's counter range.
class Draws {
 public:
  Draws(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}
  // U[lo, hi), from the top 24 bits of the next word.
  double uniform(double lo, double hi) { return lo + (hi - lo) * philox_unit(next_word()); }
  // An integer in [0, count).
  int64_t below(int64_t count) {
    return std::min<int64_t>(count - 1, static_cast<int64_t>(uniform(0, static_cast<double>(count))));
  }

 private:
  uint32_t next_word() {
    if (used_ == 4) {
      block_ = philox4x32_10(seed_, stream_, next_block_++);
      used_ = 0;
    }
    return block_.w[used_++];
  }
  uint64_t seed_, stream_, next_block_ = 0;
  PhiloxBlock block_{};
  int used_ = 4;
};

}  // namespace

SyntheticShapes::SyntheticShapes(const SyntheticOptions& options) : options_(options) {
  ATELIER_CHECK(options.size >= 1, "synthetic data: size must be >= 1, got " << options.size);
  ATELIER_CHECK(options.image_size >= 4 && options.image_size <= 4096,
                "synthetic data: image_size must be in [4, 4096], got " << options.image_size);
  ATELIER_CHECK(options.channels >= 1 && options.channels <= 64,
                "synthetic data: channels must be in [1, 64], got " << options.channels);
}

nn::Example SyntheticShapes::get(int64_t i) const {
  ATELIER_CHECK(i >= 0 && i < options_.size,
                "synthetic data: index " << i << " out of range for a data set of " << options_.size);
  const int64_t s = options_.image_size, c_count = options_.channels;
  const double side = static_cast<double>(s);
  Tensor image = full({c_count, s, s}, -1.0);
  float* px = image.data_ptr<float>();
  Draws draw(options_.seed, kSyntheticStreamTag + static_cast<uint64_t>(i));
  const int64_t shapes = 1 + draw.below(3);
  for (int64_t k = 0; k < shapes; ++k) {
    const bool ellipse = draw.below(2) == 0;
    const double cx = draw.uniform(0.15, 0.85) * side, cy = draw.uniform(0.15, 0.85) * side;
    const double rx = std::max(1.0, draw.uniform(0.1, 0.33) * side);
    const double ry = std::max(1.0, draw.uniform(0.1, 0.33) * side);
    // A grey level well above the background, or (with several channels, half the time) a colour.
    std::vector<float> colour(static_cast<size_t>(c_count));
    const bool grey = c_count == 1 || draw.below(2) == 0;
    const double level = draw.uniform(-0.4, 1.0);
    for (auto& v : colour) v = static_cast<float>(grey ? level : draw.uniform(-0.8, 1.0));
    // The pixels whose centres fall inside the shape.
    const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(cy - ry)), y1 = std::min(s, int64_t(cy + ry) + 1);
    const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(cx - rx)), x1 = std::min(s, int64_t(cx + rx) + 1);
    for (int64_t y = y0; y < y1; ++y) {
      for (int64_t x = x0; x < x1; ++x) {
        const double dx = (static_cast<double>(x) + 0.5 - cx) / rx, dy = (static_cast<double>(y) + 0.5 - cy) / ry;
        const bool inside = ellipse ? dx * dx + dy * dy <= 1.0 : (dx >= -1 && dx <= 1 && dy >= -1 && dy <= 1);
        if (!inside) continue;
        for (int64_t c = 0; c < c_count; ++c) px[(c * s + y) * s + x] = colour[static_cast<size_t>(c)];
      }
    }
  }
  return {image, Tensor()};
}

}  // namespace atelier::began

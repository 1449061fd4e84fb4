// Fashion-MNIST loading: two IDX files per split, checked against each other, padded to 32x32 and scaled.
#include "began/data/fashion_mnist.h"

#include <algorithm>

#include <sys/stat.h>

#include "backends/error.h"
#include "nn/data/idx.h"
#include "tensor/raw_ops.h"

namespace atelier::began {
namespace {

constexpr int64_t kSide = 28, kPad = 2, kPadded = kSide + 2 * kPad;  // 28 + 2 + 2 = 32
constexpr int64_t kClasses = 10;

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// `dir`/`name`.gz, or `dir`/`name` when only the uncompressed file exists.
std::string find_file(const std::string& dir, const std::string& name) {
  const std::string gz = dir + "/" + name + ".gz", plain = dir + "/" + name;
  if (is_file(gz)) return gz;
  if (is_file(plain)) return plain;
  ATELIER_FAIL("load_fashion_mnist: '" << gz << "' not found (nor '" << plain
                                       << "'): install the Debian package dataset-fashion-mnist "
                                          "(apt-get install dataset-fashion-mnist), or pass the directory holding "
                                          "the IDX files");
}

}  // namespace

FashionMnist load_fashion_mnist(const std::string& dir, bool train, int64_t limit) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  nn::IdxArray images = nn::read_idx(images_path);
  nn::IdxArray labels = nn::read_idx(labels_path);

  ATELIER_CHECK(images.dims.size() == 3 && images.dims[1] == kSide && images.dims[2] == kSide,
                "load_fashion_mnist: '" << images_path << "' holds an array of shape " << Shape(images.dims)
                                        << ", not (N, 28, 28) images");
  ATELIER_CHECK(labels.dims.size() == 1, "load_fashion_mnist: '" << labels_path << "' holds an array of shape "
                                                                 << Shape(labels.dims) << ", not (N) labels");
  ATELIER_CHECK(images.dims[0] == labels.dims[0], "load_fashion_mnist: '" << images_path << "' holds " << images.dims[0]
                                                                          << " images but '" << labels_path << "' "
                                                                          << labels.dims[0] << " labels");
  const int64_t n = limit >= 0 ? std::min(limit, images.dims[0]) : images.dims[0];

  // (N, 1, 32, 32): fill with the padding's value, then write each 28x28 image into the centre.
  Tensor out = raw::empty({n, 1, kPadded, kPadded}, DType::Float32, Device::cpu());
  float* px = out.data_ptr<float>();
  std::fill(px, px + n * kPadded * kPadded, -1.0f);  // raw 0 scaled: 0 / 127.5 - 1
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = images.data.data() + i * kSide * kSide;
    float* dst = px + i * kPadded * kPadded;
    for (int64_t y = 0; y < kSide; ++y) {
      for (int64_t x = 0; x < kSide; ++x) {
        dst[(y + kPad) * kPadded + (x + kPad)] = static_cast<float>(src[y * kSide + x] / 127.5 - 1.0);
      }
    }
  }

  Tensor targets = raw::empty({n}, DType::Int64, Device::cpu());
  int64_t* lab = targets.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t v = labels.data[static_cast<size_t>(i)];
    ATELIER_CHECK(v < kClasses, "load_fashion_mnist: '" << labels_path << "': label " << int(v) << " of example " << i
                                                        << " is not a class in [0, 10)");
    lab[i] = v;
  }
  return FashionMnist{out, targets};
}

}  // namespace atelier::began

// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 70,000 28x28 grey images of clothes in 10 classes, read from the IDX
// files that the Debian package dataset-fashion-mnist installs under /usr/share/datasets/fashion-mnist/
// (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz).
//
// BEGAN's smallest model wants 8 * 2^k pixels a side, so each image is padded to 32x32 with 2 pixels of raw value 0
// on every side (the background is 0 already), then scaled x / 127.5 - 1 to [-1, 1]: the border becomes -1.
#pragma once

#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace atelier::began {

struct FashionMnist {
  Tensor images;  // (N, 1, 32, 32) float32 in [-1, 1]
  Tensor labels;  // (N) int64 in [0, 10)
};

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Reads the training (60,000) or test (10,000) split from `dir`: <prefix>-images-idx3-ubyte.gz and
// <prefix>-labels-idx1-ubyte.gz with prefix "train" or "t10k" (the uncompressed names, without ".gz", are read
// when the .gz files are absent). limit >= 0 keeps only the first `limit` examples.
// Throws atelier::Error when a file is missing (naming it and the package to install), malformed (see read_idx),
// not 28x28 images, or when the counts of images and labels differ or a label is not below 10.
FashionMnist load_fashion_mnist(const std::string& dir = kFashionMnistDir, bool train = true, int64_t limit = -1);

}  // namespace atelier::began
